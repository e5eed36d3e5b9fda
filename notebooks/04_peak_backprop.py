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
# # 04 · Peaks and peak back-propagation
#
# Stage 2 of DeepCO3 turns the trained co-saliency map into instances (spec §7). It
# starts from **peaks**: local maxima of each image's low-resolution logit map Z. The
# working assumption is *one peak per instance*. To know which pixels a peak stands
# for, its signal is sent back down the network to the image — **peak
# back-propagation** (from PRM, Zhou et al. 2018) — giving one heat map Oⁱ per peak.
# The ranking step (notebook 05) then picks, for each peak, the object proposal that
# best matches its heat map.
#
# In this notebook: find the peaks, see the z⁺ rule on a toy layer, look at the heat
# maps, and compare z⁺ with a plain gradient — by eye and by mAPʳ.

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
import matplotlib.pyplot as plt
import numpy as np
import torch

from cosegkit import preset
from cosegkit.prm import find_peaks, zplus_relevance
from cosegkit.viz import heatmaps_figure
from cosegkit.widgets import (
    cosegment_cached,
    example_collection,
    gradient_heatmaps,
    heatmap_explorer,
    heatmap_view,
    show,
    with_heatmaps,
)

# Fast mode: 3 images, the `tiny` preset, 5 epochs. Normal mode: 12 images and the `lite` preset.
# Notebooks 04 and 05 use the same settings, so the second one loads the result from outputs/notebooks/.
N_IMAGES = 3 if FAST else 12
CONFIG = preset("tiny", epochs=5, device=str(DEVICE)) if FAST else preset("lite", device=str(DEVICE))
print(f"{N_IMAGES} images | {CONFIG.backbone} at {CONFIG.image_size} px, {CONFIG.epochs} epochs")

# %% [markdown]
# ## The whole method, once
#
# `cosegment` trains the network, then for every image computes Z and S, its peaks,
# their heat maps and a few thousand proposals, and ranks them. Everything expensive is
# kept on the returned `Result`; `cosegment_cached` also stores it on disk so that
# notebooks 04 and 05 compute it only once.

# %%
collection = example_collection("pennfudan", N_IMAGES)
result = cosegment_cached(collection, CONFIG)
print(result)

# %% [markdown]
# ## 1 · Peaks of Z
#
# For each image the network gives Z, shape (h, w) = (S/32, S/32) — here:

# %%
r = result[0]
print("Z (logits)", r.logits.shape, "| S at the original size", r.saliency.shape, "| image", r.image.shape)

# %% [markdown]
# A **peak** is a location of Z that is the largest in its 3 × 3 window (clipped at
# the borders) *and* at least the median of Z — the same "local maximum above the
# median" idea as the co-peaks of notebook 02, in 2-D. (Co-peaks over all image pairs
# would be too costly here; the paper uses these single-image peaks.)
#
# `result[i].peaks` keeps the local maxima at or above the threshold, strongest first,
# each with its heat map (only those: a heat map costs memory and time). A rerank with a
# lower threshold computes the heat maps of the peaks it adds; a higher one uses a subset.

# %%
peaks_median = find_peaks(torch.from_numpy(r.logits), window=3, threshold="median")  # (M, 2) rows, cols
print("find_peaks with the median threshold:", peaks_median.tolist())
print("the peaks the result keeps:          ", r.peaks.tolist())
for i, ri in enumerate(result.images):
    n_maxima = len(find_peaks(torch.from_numpy(ri.logits), window=3, threshold=None))
    print(
        f"image {i}: {n_maxima} local maxima, {len(ri.peaks)} at least the median (with heat maps), "
        f"{len(ri.masks)} instance(s) kept, {len(collection.gt_masks[i])} true"
    )

# %% [markdown]
# ## 2 · The z⁺ rule on one layer
#
# Peak back-propagation starts with a one-hot signal at the peak on Z and passes it
# down the network layer by layer. In a convolution (or linear layer) y = W x, the
# signal g arriving at the outputs is handed to the inputs as
#
# $$R = x^+ \odot W^{+\top}\!\left(\frac{g}{z^+}\right), \qquad x^+ = x - \min x,\quad W^+ = \max(W, 0),\quad z^+ = W^+
# x^+$$
#
# Each output unit splits its signal among its inputs **in proportion to their positive
# contributions** x⁺ᵢ W⁺ⱼᵢ: a random walk. Nothing is created or lost (Σ R = Σ g
# wherever z⁺ > 0), and the result is never negative. ReLU and max-pooling route the
# signal like their ordinary gradients; batch norm is folded into the convolution first.
#
# A toy layer with 4 inputs and 3 outputs (a 1 × 1 convolution on a 1 × 1 image), the
# signal 1 at output 0:

# %%
torch.manual_seed(1)
x = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 4, 1, 1)  # (B, C_in, H, W)
weight = torch.randn(3, 4, 1, 1)  # (C_out, C_in, 1, 1)
g = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # one-hot signal at output 0

R = zplus_relevance(x, weight, g)  # (1, 4, 1, 1)
x_plus, w_plus = x.flatten() - x.min(), weight[:, :, 0, 0].clamp(min=0)
R_by_hand = x_plus * w_plus[0] / (w_plus[0] @ x_plus)  # output 0's share for each input
gradient = weight[0, :, 0, 0]  # ∂y₀/∂x: the plain gradient of output 0
print("weights of output 0:", weight[0, :, 0, 0].numpy().round(3), "| x⁺:", x_plus.numpy())
print("z⁺ rule R          :", R.flatten().numpy().round(3), f" sum {R.sum():.3f}")
print("by hand            :", R_by_hand.numpy().round(3))
print("plain gradient     :", gradient.numpy().round(3), f" sum {gradient.sum():.3f}")

# %% [markdown]
# The z⁺ signal is non-negative and sums to 1; inputs with a negative weight or with
# x⁺ = 0 (here the smallest input) get nothing. The gradient instead says how the output
# *would change* if an input changed — it has signs, no conservation, and over many
# layers tends to be noisy.
#
# ## 3 · Heat maps
#
# The heat map Oⁱ is the sum over the 3 colour channels of the signal reaching the
# image, resized to the proposals' working resolution: `result[i].heatmaps` has shape
# (M, h, w), one map per peak. All peaks of an image go down in one batched backward pass.

# %%
print("heat maps of image 0:", r.heatmaps.shape, "(peaks, h, w)")
fig = heatmaps_figure(r, max_maps=4)
fig.suptitle(f"{r.name}: z⁺ heat maps of the strongest peaks (each scaled to its maximum; star = the peak)", y=1.08)
show(fig)

# %% [markdown]
# ## 4 · z⁺ against a plain gradient
#
# For one peak: S with all peaks (cyan: above the median, grey: below), the z⁺ heat
# map, the plain-gradient heat map |∂Z(peak)/∂image| (computed here: one more
# backward pass per image), and the proposal the ranking function picks for this peak
# from its z⁺ map. The titles give how concentrated each heat map is: the share of the
# heat in its hottest 10 % of pixels.

# %%
i = 0
gradient_maps = gradient_heatmaps(result, i)  # (M, h, w)
k = int(result[i].instance_peaks[0]) if len(result[i].instance_peaks) else 0  # the peak of the best instance
show(heatmap_view(result, i, k, gradient_maps))

# %% [markdown]
# By eye is not enough. Replace every heat map by its plain-gradient version, rank
# again, and compare the collection's mAPʳ (spec §8). The spec's prototype measured this
# on 30 Penn-Fudan images (with the prior as S and γ = 1e-6): z⁺ 0.20 / 0.04 against
# gradient 0.23 / 0.01 (mAPʳ@0.25 / @0.5) — no clear winner. On a few images expect
# noisy numbers.

# %%
gradients = [gradient_maps if j == i else gradient_heatmaps(result, j) for j in range(len(result))]
with_gradient = with_heatmaps(result, gradients)
if collection.has_ground_truth:
    for name, res in [("z⁺ rule", result), ("plain gradient", with_gradient)]:
        print(f"{name:>15}: " + ", ".join(f"{key} {value:.3f}" for key, value in res.evaluate().items()))

# %% [markdown]
# ## 5 · A transformer backbone: two random walks
#
# The `dino` preset reads images with DINOv2 ViT-S/14, a vision transformer. There the z⁺
# walk above does not fit: a ViT cuts the image into 14 × 14-pixel patches, turns each into a
# token, and every block lets **every token read from every other token** through attention.
# A convolution only mixes a small neighbourhood, so a CNN's heat map stays near its peak; in a
# ViT one block can carry signal across the whole image.
#
# **First try: walk down the attention.** Only attention moves signal *between* tokens (layer
# norms, MLPs and linear maps act on each token alone). A block computes, for token i,
# $x_i \leftarrow x_i + \sum_j A_{ij} v_j$ with $A_{ij} \ge 0$, $\sum_j A_{ij} = 1$. Split the
# signal of token i evenly between the residual (stay at i) and attention (go to j in proportion
# to Aᵢⱼ), average the heads, and walk down the blocks:
#
# $$r \leftarrow \tfrac12\, r + \tfrac12\, \bar A^{\top} r$$
#
# a random walk again (Σ r stays 1), started one-hot at the peak's token because the head is a
# 1 × 1 convolution on the token grid. This is *attention rollout* (Abnar & Zuidema 2020) run
# from one peak.
#
# **What cosegkit uses: walk on the feature grid.** Start at the peak's cell of the 32 × 32
# feature grid and step to yourself or one of the 8 neighbours with probability ∝
# max(0, cos(f(p), f(q)))² (features centred on the image's mean): like cells pass the walk on,
# the border of an object stops it. The heat map is where 32 steps spent their time.
#
# One image, two locations (a pedestrian, a corner of the background), both walks:

# %%
from cosegkit.model import to_input
from cosegkit.vit import IMAGENET_MEAN, IMAGENET_STD, attention_rollout, dinov2_vits14_backbone, feature_walk

dino = dinov2_vits14_backbone(pretrained=True).eval()
SIDE = 224 if FAST else 448  # a 16 × 16 or 32 × 32 grid
GRID = SIDE // 14
x = (to_input([r.image], SIDE) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
    1, 3, 1, 1
)
gt = collection.gt_masks[0]
pixels = np.argwhere(gt[0]) if len(gt) else np.array([[r.image.shape[0] // 2, r.image.shape[1] // 2]])
row, col = pixels[len(pixels) // 2]
on_person = (int(row * GRID / r.image.shape[0]), int(col * GRID / r.image.shape[1]))
locations = torch.tensor([on_person, (1, 1)])  # a pedestrian's cell, a background corner
with torch.no_grad():
    rollout = attention_rollout(dino, x, locations)  # (2, GRID, GRID)
    walk = feature_walk(dino(x)[0], locations)  # (2, GRID, GRID)
print(
    "rollout: signal left on the patch tokens",
    rollout.sum(dim=(1, 2)).numpy().round(3),
    "(the rest is on the class token)",
)
fig, axes = plt.subplots(2, 3, figsize=(12, 8))
for row_axes, maps, name in zip(axes, [rollout, walk], ["attention rollout", "walk on the feature grid"]):
    row_axes[0].imshow(r.image)
    row_axes[0].set_title(name)
    for ax, heat, (rr, cc), what in zip(row_axes[1:], maps, locations.tolist(), ["a pedestrian", "the background"]):
        ax.imshow(heat, cmap="magma")
        ax.plot(cc, rr, "c*", markersize=14)
        ax.set_title(f"from {what}")
for ax in axes.flat:
    ax.axis("off")
show(fig)

# %% [markdown]
# The rollout maps from the two locations end in the same few bright cells. DINOv2 (trained
# without "register" tokens) parks attention on a handful of background tokens with large
# norms; every walk down the attention drains into them, whatever the peak. Measured on 40
# Penn-Fudan tune images with the same trained network (`benchmarks/results/vit_heatmaps_tune.md`),
# rollout ranks worst of the heat maps tried; the feature-grid walk keeps the signal on the
# peak's instance and is what `prm.heatmaps` uses for the ViT.
#
# Check the rollout rule by brute force: build ½ I + ½ Ā for every block by hand and multiply
# the matrices; the row of the peak's token is its heat map.

# %%
r0, c0 = on_person
with torch.no_grad():
    tokens = dino[0](x)
    transitions = []  # one (N, N) matrix per block, N = 1 + GRID² tokens
    for block in dino[1:-1]:
        transitions.append(0.5 * torch.eye(tokens.shape[1]) + 0.5 * block.attention(tokens)[0].mean(0))
        tokens = block(tokens)
product = torch.eye(tokens.shape[1])
for transition in reversed(transitions):  # the walk goes down: last block first
    product = product @ transition
by_hand = product[1 + r0 * GRID + c0, 1:].reshape(GRID, GRID)
print("largest difference to attention_rollout:", float((by_hand - rollout[0]).abs().max()))

# %% [markdown]
# ## Explore
#
# Choose an image and a peak. Questions:
#
# 1. Do peaks on a person give heat maps that cover *that* person (not the neighbour)?
# 2. Where do the peaks below the median (grey) lie? Would you keep them?
# 3. Is the z⁺ map or the gradient map closer to the shape of the object?
#
# (The gradient maps computed above are reused, so every choice answers at once.)

# %%
heatmap_explorer(result, gradient_maps=dict(enumerate(gradients)))

# %% [markdown]
# ## Exercise: conservation through a whole layer
#
# Take a 3 × 3 convolution with 8 input and 4 output channels on a random 6 × 6
# input, padding 1, and a random non-negative signal g at its output. Compute
# R = `zplus_relevance(x, weight, g, padding=1)` and check that R ≥ 0 and that
# R.sum() equals g.sum() — up to the signal at outputs where z⁺ = 0, which is dropped.
#
# <details>
# <summary>Solution (click to open)</summary>
#
# ```python
# import torch.nn.functional as F
#
# x = torch.randn(1, 8, 6, 6)
# weight = torch.randn(4, 8, 3, 3)
# g = torch.rand(1, 4, 6, 6)
# R = zplus_relevance(x, weight, g, padding=1)
# z_plus = F.conv2d(x - x.min(), weight.clamp(min=0), padding=1)       # (1, 4, 6, 6)
# kept = g[z_plus > 0].sum()                                           # the signal that can flow
# print(bool((R >= 0).all()), float(R.sum()), float(kept))             # the two sums agree
# ```
# Padding adds zeros to x⁺ (after the shift), so a border output splits its signal only
# among real pixels — nothing leaks into the padding.
# </details>

# %%
# your code here
