# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Proposals and the ranking function
#
# DeepCO3 never draws a mask itself. For every peak it **chooses** one mask from a
# large set of unsupervised candidates — *object proposals* — with a ranking function
# that combines the peak's heat map Oⁱ and the co-saliency map S (spec §7, steps 4–7):
#
# $$R(P) = \beta\,\langle O^i \odot S, P\rangle + \langle O^i \odot S, \hat P\rangle - \gamma\,\langle 1 - S, P\rangle,
# \qquad \beta = 0.8,\ \gamma = 10^{-5}$$
#
# where ⟨A, B⟩ = Σ A ⊙ B, P is a proposal's mask and P̂ its contour band. Then each
# peak keeps its best proposal, duplicates are removed by mask non-maximum suppression
# (NMS), and the survivors are the instances.
#
# Because training, heat maps and proposals are stored on the `Result`, this last step
# can be re-run in a fraction of a second: `result.rerank(beta=…, gamma=…, nms_iou=…,
# peak_threshold=…)`. That is what the sliders at the end do.

# %%
# Setup. On Colab: install cosegkit from its repository (Colab's torch is kept as it is).
# Everywhere: pick the device (CUDA GPU, then Apple MPS, then CPU) and read the fast-mode switch.
import importlib.util
import sys

REPO_URL = "https://github.com/cosegkit/cosegkit"  # where cosegkit is installed from on Colab

if "google.colab" in sys.modules:
    if importlib.util.find_spec("cosegkit") is None:  # once per Colab session
        import subprocess

        import torch  # noqa: E401  (Colab's CUDA builds: pinned below so pip never replaces them)
        import torchvision

        with open("/tmp/keep_torch.txt", "w") as pins:
            pins.write(f"torch=={torch.__version__}\ntorchvision=={torchvision.__version__}\n")
        pip = [sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/keep_torch.txt"]
        subprocess.run([*pip, f"cosegkit[notebooks] @ git+{REPO_URL}"], check=True)
    from google.colab import output

    output.enable_custom_widget_manager()  # ipywidgets 8 on Colab

import cosegkit
from cosegkit.widgets import fast_mode

DEVICE = cosegkit.resolve_device("auto")
FAST = fast_mode()  # environment variable COSEGKIT_FAST=1: about a minute on a CPU (CI)
print(f"cosegkit {cosegkit.__version__} | device: {DEVICE} | fast mode: {FAST}")

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from cosegkit import preset
from cosegkit.baselines import best_proposal_iou
from cosegkit.ranking import (
    GAMMA_REFERENCE_AREA,
    normalize_heatmaps,
    normalize_saliency,
    proposal_scores,
    ranking_saliency_map,
)
from cosegkit.viz import overlay
from cosegkit.widgets import cosegment_cached, example_collection, ranking_explorer, rerank_view, show

# The same settings as notebook 04, so the result computed there is loaded from outputs/notebooks/.
N_IMAGES = 3 if FAST else 12
CONFIG = preset("tiny", epochs=5, device=str(DEVICE)) if FAST else preset("lite", device=str(DEVICE))
collection = example_collection("pennfudan", N_IMAGES)
result = cosegment_cached(collection, CONFIG)
print(result)

# %% [markdown]
# ## 1 · Proposals
#
# `cosegkit.proposals` builds a few thousand candidate masks per image without any
# training: a watershed cuts the image into small *leaf* regions along colour edges,
# two merge hierarchies join neighbouring leaves step by step (every merge is a
# proposal), and pairs and triples of adjacent regions are added — people split into
# head, clothes and legs, and only such groups put them back together.
#
# Every proposal is a union of leaves, so they are stored as a leaf label map (h, w)
# plus a sparse membership matrix (P proposals × L leaves) instead of P full masks;
# sums over a proposal are sparse matrix products.

# %%
i = 0
r = result[i]
props = r.proposals
print(props)
print(f"working resolution {props.shape} (the image is {r.shape}), {props.n} proposals over {props.n_leaves} leaves")

rng = np.random.default_rng(0)
sample = rng.choice(props.n, size=6, replace=False)
fig, axes = plt.subplots(1, 6, figsize=(18, 3.2))
for ax, p, mask in zip(axes, sample, props.masks(sample, out_shape=r.shape)):
    ax.imshow(overlay(r.image, mask[None]))
    ax.set_title(f"proposal {p}: {100 * props.areas[p] / np.prod(props.shape):.1f} % of the image", fontsize=9)
    ax.axis("off")
show(fig)

# %% [markdown]
# **Proposals bound what ranking can achieve**: if no proposal fits a person, no
# ranking function can find that person. For every true instance,
# `cosegkit.baselines.best_proposal_iou` finds the best IoU any proposal reaches (the
# intersections of all proposals with a mask are one sparse product, so this costs
# milliseconds). On 30 Penn-Fudan images at 500 px, 92 % of the pedestrians have a
# proposal with IoU ≥ 0.5 (`benchmarks/results/proposals.md`); smaller working sizes,
# as in fast mode, lose some.

# %%
if collection.has_ground_truth:
    best = np.concatenate([best_proposal_iou(ri.proposals, g)[0] for ri, g in zip(result.images, collection.gt_masks)])
    print(
        f"{len(best)} true instances: mean best IoU (ABO) {best.mean():.2f}, "
        f"IoU ≥ 0.5 for {100 * (best >= 0.5).mean():.0f} %, ≥ 0.7 for {100 * (best >= 0.7).mean():.0f} %"
    )

# %% [markdown]
# ## 2 · The ranking function, term by term
#
# For one peak i (here the peak of the best instance of image 0), with its heat map
# Oⁱ **normalised to sum 1** (what PRM's released code does):
#
# - **instance-aware** β⟨Oⁱ ⊙ S, P⟩: the share of the peak's salient heat inside P —
#   at most β, reached by any proposal that covers all of it (so it favours big ones);
# - **contour-preserving** ⟨Oⁱ ⊙ S, P̂⟩: heat on P's boundary band (dilation minus erosion
#   with a `contour_width` × `contour_width` square: 5 in the paper, 3 in `lite`) —
#   back-propagated heat concentrates on edges, so a proposal whose outline runs through
#   the hot edges scores;
# - **background-suppressing** −γ⟨1 − S, P⟩: a penalty for every non-salient pixel P
#   covers. In the paper P counts **pixels**, so the term grows with resolution: γ = 1e-5
#   was set for photos of ~500 × 375 (`gamma_mode="pixels"`). With `gamma_mode="area"`
#   the count is rescaled to a 500 × 375 image, ⟨1 − S, P⟩ · 187 500 / (h·w), so the same γ
#   means the same thing at any working resolution.
#
# The `lite` preset changes five things in this step (see its docstring and
# `benchmarks/results/quality.md`): `gamma_mode="area"` with γ = 3e-6; S **divided by its
# maximum** before ranking (`ranking_saliency_norm="max"`) — the network learned to imitate
# a squared prior whose mean is ~0.1, so S peaks near 0.3 and, read as it is, 1 − S ≈ 1
# everywhere: the background term becomes a plain area penalty that keeps a pedestrian's
# torso and drops the legs; and an instance's score is R × S̃ at its peak
# (`instance_score="ranking_x_peak"`), so instances found from background peaks rank last;
# and it chooses *which* map the ranking reads as S: not the trained co-saliency alone
# (`ranking_saliency="cosaliency"`, the paper) but its geometric mean with the saliency prior,
# √(S · Ŝ) (`"geometric_mean"`). S comes from the 14 × 14 grid and is blurred at object edges;
# Ŝ is sharp but lights up every salient thing; the product is high only where both agree
# (balloons: mAPʳ@0.5 0.056 → 0.105, CorLocʳ 0.28 → 0.46); and it narrows the contour band
# to 3 pixels (`contour_width=3`), so only heat right on a proposal's outline counts
# (mAPʳ@0.5 0.090 → 0.100 on balloons, 0.068 → 0.076 on Penn-Fudan, same trained network;
# measured, not explained — try `result.rerank(contour_width=5)` and compare the masks).
# The `tiny` preset also cubes each heat map before normalising (`heatmap_power=3`): on its
# coarse 8 × 8 grid the z⁺ maps spread over much of the image. The cell below follows whatever
# the config says (`result.config.ranking`, a `RankingOptions`), and checks the sum of the three
# terms against `proposal_scores`, what the pipeline ranks with.

# %%
c = result.config.ranking
print(f"β = {c.beta}, γ = {c.gamma:g} ({c.gamma_mode})")
print(f"heat maps to the power {c.heatmap_power:g}, normalised to {c.heatmap_norm} 1")
k = int(r.instance_peaks[0]) if len(r.instance_peaks) else 0
heat = np.maximum(r.heatmaps[k], 0) ** c.heatmap_power  # (h, w)
O_k = normalize_heatmaps(heat[None], c.heatmap_norm)[0]  # (h, w) the heat map Oᵏ, sums to 1
# (h, w): S, or √(S · Ŝ) with ranking_saliency="geometric_mean"
S_rank = ranking_saliency_map(r.saliency_work, r.prior_work, c)
S = normalize_saliency(S_rank, c.ranking_saliency_norm)  # at the proposals' resolution (÷ its max with "max")
instance = c.beta * props.region_sums(O_k * S)  # (P,)
contour = props.contour_sums(O_k * S, width=c.contour_width)  # (P,)
outside = props.region_sums(1 - S)  # (P,) ⟨1 − S, P⟩ in pixels of the working resolution
background = c.gamma * (outside if c.gamma_mode == "pixels" else outside * GAMMA_REFERENCE_AREA / S.size)
R = instance + contour - background
reference = proposal_scores(props, r.heatmaps[[k]], r.saliency_work, r.prior_work, c)[:, 0]
print("R from the three terms equals proposal_scores:", np.allclose(R, reference))

top = np.argsort(-R)[:4]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
for ax, p, mask in zip(axes, top, props.masks(top, out_shape=r.shape)):
    ax.imshow(overlay(r.image, mask[None]))
    ax.set_title(
        f"R = {R[p]:.3f}\n= {instance[p]:.3f} (β·inst) + {contour[p]:.3f} (contour) − {background[p]:.3f} (bg)",
        fontsize=9,
    )
    ax.axis("off")
fig.suptitle(f"{r.name}: the 4 best proposals for peak {k}", y=1.03)
show(fig)

# %% [markdown]
# Why normalise Oⁱ to sum 1 and not to max 1? With max-normalised maps the heat terms
# count pixels (hundreds) while the γ term stays ~1, so the penalty no longer matters
# and the largest proposal wins (spec §7.5: ~0.8 against ~220). Compare the size of
# the background term with the others above: with sum-normalised maps they are of the
# same order.
#
# ## 3 · From scores to instances
#
# 1. each peak above the threshold keeps its best proposal, with score R;
# 2. a proposal chosen by several peaks is kept once;
# 3. **mask NMS**: by decreasing score, drop a mask whose IoU with an already kept mask is
#    ≥ 0.4 (`nms_iou`);
# 4. optionally the **class filter** drops instances below the 20th percentile of all
#    scores of the collection (off by default: it never helped in the spec's runs).

# %%
in_use = r.used_peaks(CONFIG.ranking.peak_threshold)
print(f"image {i}: {len(in_use)} peaks in use → {len(r.masks)} instance(s), scores {np.round(r.scores, 3).tolist()}")
show(rerank_view(result, i)[2])

# %% [markdown]
# ## 4 · Another proposal source: a promptable segmenter at the peak
#
# The ranking does not care where the candidate masks come from. `Config.proposals`
# chooses the source: `"hierarchy"` (the watershed proposals above, the default),
# `"sam"` — **MobileSAM** (a small Segment-Anything model) prompted with one point at
# every peak of Z, which answers with three masks per point (roughly a part, a bigger
# part, the whole object) — or `"both"`, their union. The segmenter's own score tends to
# prefer a part; choosing among the three is R's job, with the heat map and S.
#
# Its image encoder runs once per image (~2–3 s on a CPU, a fraction of a second on a
# GPU); each prompt is then a few milliseconds. Below: the same peak k as in section 2,
# its best watershed proposal and the segmenter's three masks, each with its R; the
# frame marks the mask R picks from the union of both sources.

# %%
from cosegkit.sam import combine_proposals, prompted_proposals, segmenter_for
from cosegkit.weights import WeightsUnavailableError, packaged_file

try:
    packaged_file("mobile_sam", download=False)  # cached by `python -m cosegkit weights` (make setup)
    segmenter = segmenter_for(CONFIG)
except WeightsUnavailableError as error:
    segmenter = None
    print(f"MobileSAM's weights are not cached, so this section is skipped: {error}")

if segmenter is not None and len(r.peaks):
    start = time.perf_counter()
    sam = prompted_proposals(segmenter, r.image, r.peaks[[k]], r.logits.shape, props.shape)  # ≤ 3 masks
    print(f"MobileSAM: {sam.n} masks for peak {k} in {time.perf_counter() - start:.1f} s")
    both = combine_proposals(props, sam)  # watershed proposals first, then the prompted masks
    R_both = proposal_scores(both, r.heatmaps[[k]], r.saliency_work, r.prior_work, c)[:, 0]
    best_hier = int(np.argmax(R_both[: props.n]))
    shown = [best_hier] + list(props.n + np.arange(sam.n))
    labels = [f"watershed (best of {props.n})"] + [
        f"MobileSAM mask {j + 1} (its own IoU guess {sam.predicted_iou[j]:.2f})" for j in range(sam.n)
    ]
    pick = int(np.argmax(R_both))
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6), squeeze=False)
    for ax, p, label, mask in zip(axes[0], shown, labels, both.masks(shown, out_shape=r.shape)):
        ax.imshow(overlay(r.image, mask[None]))
        ax.set_title(f"{label}\nR = {R_both[p]:.3f}" + ("  ← R picks this" if p == pick else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if p == pick:
            for side in ax.spines.values():
                side.set(color="red", linewidth=3)
    fig.suptitle(f"{r.name}, peak {k}: two proposal sources, one ranking function", y=1.04)
    show(fig)

# %% [markdown]
# `cosegkit.cosegment(images, preset("lite", proposals="sam"))` runs the whole method
# with the prompted masks; `benchmarks/results/quality_sam.md` compares the sources on
# the same network and peaks.

# %% [markdown]
# ## Explore the ranking
#
# Move the sliders and watch the chosen masks and the collection's mAPʳ / CorLocʳ
# (spec §8; notebook 06 explains them) update. Nothing is trained or back-propagated
# again — only `result.rerank(...)` runs:

# %%
start = time.perf_counter()
_ = result.rerank(beta=0.5, gamma=1e-6, nms_iou=0.5, peak_threshold="median")
print(f"one rerank of all {len(result)} images: {time.perf_counter() - start:.3f} s")

# %% [markdown]
# Things to try:
#
# - **β → 0**: only the contour term and the penalty remain. **β large**: the instance
#   term dominates and bigger proposals win.
# - **γ up to 1e-3**: the background penalty takes over and masks shrink to the most
#   salient pixels; **γ down to 1e-8**: no penalty, big masks. The spec's prototype
#   (pixel-counted γ) found 1e-6 better than 1e-5 on Penn-Fudan — tuned on the test
#   images, so beware.
# - **NMS IoU 1.0**: no suppression (overlapping duplicates); **0.1**: almost any overlap
#   removes the weaker mask.
# - **peak threshold**: untick "median" and lower the fixed level to let weaker peaks
#   (often background) propose instances; raise it to keep only the strongest.

# %%
ranking_explorer(result, i=0)

# %% [markdown]
# ## Exercise: mask NMS
#
# Write `my_nms(masks, scores, iou_threshold)` — masks (K, H, W) bool, scores (K,) —
# returning the indices kept, best first, and check it against
# `cosegkit.masks.mask_nms` on this image's instances *before* NMS (all best
# proposals of the peaks: `result.rerank(nms_iou=1.0)[i]`).
#
# <details>
# <summary>Solution (click to open)</summary>
#
# ```python
# def my_nms(masks, scores, iou_threshold=0.4):
#     flat = masks.reshape(len(masks), -1).astype(np.float32)
#     inter = flat @ flat.T                                       # (K, K) pixels in common
#     areas = flat.sum(axis=1)
#     iou = inter / np.maximum(areas[:, None] + areas[None, :] - inter, 1)
#     kept, suppressed = [], np.zeros(len(masks), bool)
#     for k in np.argsort(-scores, kind="stable"):                # best first
#         if not suppressed[k]:
#             kept.append(k)
#             suppressed |= iou[k] >= iou_threshold                 # this one's overlaps are out
#     return np.array(kept, dtype=int)
#
# before = result.rerank(nms_iou=1.0)[i]
# print(my_nms(before.masks, before.scores), mask_nms(before.masks, before.scores, 0.4))
# ```
# </details>

# %%
# your code here
