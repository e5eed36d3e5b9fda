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
# # 01 · The 4-D correlation tensor
#
# DeepCO3 never sees a label. What it *can* see is that the images of a collection
# share something: somewhere in image *n* and somewhere in image *m* there are
# locations whose deep features look alike. This notebook builds the object that
# measures "alike" for **every pair of locations at once**: the 4-D correlation
# tensor **T**, and its saliency-guided version **Tˢ** (spec §3).
#
# You will:
# 1. turn images into feature maps and print every shape on the way;
# 2. normalise the features and see why correlations land in [0, 1);
# 3. build T as one matrix product and check it by hand;
# 4. look at a slice T(p, ·) — "where in image m does location p of image n reappear?";
# 5. weight it by the co-saliency maps to get Tˢ, and explore both with sliders.

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
from cosegkit.correlation import correlation_tensor, normalize_features, saliency_guided
from cosegkit.model import to_input
from cosegkit.widgets import (
    correlation_explorer,
    correlation_view,
    example_collection,
    fit_cached,
    foreground_at,
    network_maps,
    show,
)

# Fast mode (CI): 4 images at 256 px (an 8×8 feature grid), 4 epochs.
# Normal mode: the `lite` preset — 448 px (a 14×14 grid), 40 epochs — on 8 images.
N_IMAGES = 4 if FAST else 8
CONFIG = preset("lite", device=str(DEVICE), progress=not FAST)
if FAST:
    CONFIG = CONFIG.replace(image_size=256, epochs=4)
print(f"{N_IMAGES} images, image_size {CONFIG.image_size}, {CONFIG.epochs} epochs, backbone {CONFIG.backbone}")

# %% [markdown]
# ## The collection
#
# A handful of Penn-Fudan street photos: every image shows one or more pedestrians.
# (If the data set is not on this machine, a synthetic collection is used instead and a
# note says so.)

# %%
collection = example_collection("pennfudan", N_IMAGES)
print(collection)
fig, axes = plt.subplots(1, len(collection), figsize=(3 * len(collection), 3))
for i, ax in enumerate(axes):
    ax.imshow(collection[i])
    ax.set_title(f"image {i}: {collection[i].shape[1]}×{collection[i].shape[0]} px", fontsize=9)
    ax.axis("off")
show(fig)

# %% [markdown]
# ## Step 1 — images → feature maps
#
# The network resizes every image to a square of `image_size` pixels and runs a
# backbone (here EfficientNet-Lite0 pretrained on ImageNet; VGG-16 in the paper).
# The backbone shrinks each side by its **stride, 32**, so a 448-px input gives a
# 14 × 14 grid of locations P, and every location p carries a feature vector f(p)
# with C channels (1280 for Lite0, 4096 for VGG-16's fc6).
#
# We also need a *trained* network for step 5 (its co-saliency head). Training is the
# subject of notebook 03; here we simply call it. `fit_cached` saves the result under
# `outputs/notebooks/`, so notebook 02 reuses it instead of training again.

# %%
fitted = fit_cached(collection, CONFIG)
net = fitted.net
x = to_input(collection.images, CONFIG.image_size)  # (N, 3, S, S), RGB in [0, 1]
print("input x          ", tuple(x.shape), "  (N images, RGB, S, S)")
with torch.no_grad():
    out = net(net.normalize(x[:2].to(DEVICE)))
print("features F       ", tuple(out.features.shape), "  (2 images, C channels, h, w) — h = S / 32")
print("smallest feature ", float(out.features.min()), " — non-negative: the backbone ends with a ReLU(6)")

# %% [markdown]
# ## Step 2 — normalise every feature vector
#
# $$\hat f(p) = \frac{f(p)}{\sqrt{\lVert f(p)\rVert^2 + 0.01}}$$
#
# Each vector is scaled to a length just below 1 (the 0.01 keeps an all-zero vector at
# zero instead of dividing by zero). Because the features are non-negative, the inner
# product of two such vectors lies in **[0, 1)**: 0 when they share no active channel,
# close to 1 when they point the same way. (That is the paper's T. The `lite` preset first
# subtracts the batch's mean feature vector, `feature_centering="batch"`, so its T lies in
# [−1, 1] and unlike cells correlate *negatively*; notebook 03, section 4, shows why the pair
# losses need that sign.)

# %%
f_hat = normalize_features(out.features).cpu()
norms = f_hat.norm(dim=1)  # (2, h, w)
print("f̂ shape", tuple(f_hat.shape), f"| lengths ‖f̂(p)‖ between {norms.min():.6f} and {norms.max():.6f}")

# %% [markdown]
# ## Step 3 — T as one matrix product
#
# $$T_{nm}(p, q) = \langle \hat f_n(p), \hat f_m(q)\rangle \qquad \text{shape } (h, w, h, w)$$
#
# Flatten the grid of image n into a (hw × C) matrix and that of image m into (C × hw):
# their product is the (hw × hw) table of all inner products, and a reshape gives the
# 4-D tensor. The first two axes index p in image n, the last two q in image m.
# `cosegkit.correlation.correlation_tensor` does exactly this for a batch of pairs
# (the batch axis comes first: `(B, h, w, h, w)`).

# %%
C, h, w = f_hat.shape[1:]
rows = f_hat[0].reshape(C, h * w).T  # (hw, C): one row per location p of image n
cols = f_hat[1].reshape(C, h * w)  # (C, hw): one column per location q of image m
T_by_hand = (rows @ cols).reshape(h, w, h, w)
T = correlation_tensor(f_hat[0:1], f_hat[1:2])[0]
print("rows", tuple(rows.shape), "@ cols", tuple(cols.shape), "→", tuple((rows @ cols).shape), "→ T", tuple(T.shape))
print("same as correlation_tensor:", torch.allclose(T, T_by_hand, atol=1e-6))
print(f"T has (hw)² = {T.numel():,} entries, values in [{T.min():.3f}, {T.max():.3f}]")

# %% [markdown]
# A quick sanity check: correlate image n **with itself**. Then T(p, p) = ‖f̂(p)‖², the
# diagonal is close to 1, and no other entry can beat it by much (Cauchy–Schwarz).

# %%
T_self = correlation_tensor(f_hat[0:1], f_hat[0:1])[0].reshape(h * w, h * w)  # (hw, hw)
diagonal = T_self.diagonal()
off_diagonal = T_self[~torch.eye(h * w, dtype=torch.bool)]
print(
    f"diagonal T(p, p): mean {diagonal.mean():.3f} | "
    f"other entries: mean {off_diagonal.mean():.3f}, max {off_diagonal.max():.3f}"
)

# %% [markdown]
# ## Step 4 — one slice: T(p, ·)
#
# Fix a location p of image n. T(p, ·) is an h × w map over image m: how much each
# location q of image m looks like p. Below, p is the grid cell at the centre of the
# first ground-truth person of image n (we use the ground truth only to *choose* p;
# the method never sees it).
#
# ## Step 5 — the saliency-guided tensor Tˢ
#
# T alone matches *anything* that looks alike: road with road, wall with wall. DeepCO3
# only cares about matches between **salient** locations, so it weights T by the
# low-resolution co-saliency maps S̃ = sigmoid(Z) of both images:
#
# $$T^s_{nm}(p, q) = \tilde S_n(p)\,\tilde S_m(q)\,T_{nm}(p, q)$$
#
# S̃ has shape (h, w) per image (the same grid as the features); Tˢ has the shape of T.
# The figure shows, left to right: image n with p, T(p, ·) over image m, S̃ of image m,
# and their product Tˢ(p, ·) (the star marks its maximum). Heat maps are drawn on the
# network's grid, stretched over the photo — each coloured square is one location q.

# %%
f_all, s_all = network_maps(fitted)  # f̂ (N, C, h, w) and S̃ (N, h, w) of every image, computed once
print("f̂ of all images", tuple(f_all.shape), "| S̃ of all images", tuple(s_all.shape))
n, m = 0, 1
T = correlation_tensor(f_all[n : n + 1], f_all[m : m + 1])[0]  # (h, w, h, w)
Ts = saliency_guided(T[None], s_all[n : n + 1], s_all[m : m + 1])[0]  # (h, w, h, w)
print("T", tuple(T.shape), "| Tˢ", tuple(Ts.shape), f"| max T {T.max():.3f}, max Tˢ {Ts.max():.4f}")

H, W = collection[n].shape[:2]
ys, xs = np.nonzero(collection.gt_masks[n][0])  # pixels of the first instance of image n
p_object = (int(ys.mean() * h / H), int(xs.mean() * w / W))  # its centre, on the h × w grid
show(correlation_view(collection[n], collection[m], T, Ts, s_all[n], s_all[m], *p_object))

# %% [markdown]
# Now put p on the background: the least salient grid cell that touches no person.
# T(p, ·) may still be large — backgrounds resemble backgrounds — but S̃n(p) is small,
# so the whole slice Tˢ(p, ·) shrinks (compare the colour bars: the Tˢ scale is fixed
# to the largest value of the whole pair).
#
# How much S̃ varies depends on training: in fast mode (a few epochs) it is still close
# to flat, so the contrast between the two figures is modest; after the full 40 epochs
# it varies much more — though, as the S̃m panel shows, not only on the people: it
# follows its saliency prior, which also likes bright bushes and kerbs.

# %%
people = foreground_at(collection.gt_masks[n], 32 * h)  # (32h, 32w) bool: union of all people, at the input size
touches_person = torch.from_numpy(people.reshape(h, 32, w, 32).any(axis=(1, 3)))  # (h, w): cells with any person pixel
p_background = np.unravel_index(int(s_all[n].masked_fill(touches_person, 2.0).argmin()), (h, w))
show(correlation_view(collection[n], collection[m], T, Ts, s_all[n], s_all[m], *p_background))

# %% [markdown]
# ## Explore
#
# Pick any two images and move p with the sliders. Things to look for:
#
# - p on a person: does T(p, ·) light up the people of image m? the same body part?
# - p on the road: T(p, ·) finds the road in image m, Tˢ(p, ·) stays dark.
# - n = m: the brightest q of T(p, ·) is p itself.
#
# (Every control answers at once: the features of all images are cached, and T for a
# new pair is one matrix product.)

# %%
correlation_explorer(collection.images, f_all, s_all, n=0, m=1)

# %% [markdown]
# ## Exercise
#
# Compute T and Tˢ for the pair (n, m) = (2, 3) **in one line each** with `torch.einsum`
# from `f_all` (N, C, h, w) and `s_all` (N, h, w), and check them against
# `correlation_tensor` and `saliency_guided`.
#
# <details>
# <summary>Solution (click to open)</summary>
#
# ```python
# T_e = torch.einsum("cij,ckl->ijkl", f_all[2], f_all[3])                 # (h, w, h, w)
# Ts_e = torch.einsum("ij,kl,ijkl->ijkl", s_all[2], s_all[3], T_e)        # S̃n(p) S̃m(q) T(p, q)
# T_ref = correlation_tensor(f_all[2:3], f_all[3:4])[0]
# print(torch.allclose(T_e, T_ref, atol=1e-6),
#       torch.allclose(Ts_e, saliency_guided(T_ref[None], s_all[2:3], s_all[3:4])[0], atol=1e-7))
# ```
# `"cij,ckl->ijkl"` multiplies the channel vectors at (i, j) and (k, l) and sums over c —
# the same (hw × C)·(C × hw) product as above, without the reshapes.
# </details>

# %%
# your code here

# %% [markdown]
# ## What to remember
#
# | object | shape | meaning |
# | --- | --- | --- |
# | F | (C, h, w) per image | backbone features, h = S / 32, non-negative |
# | f̂ | (C, h, w) | F with every vector scaled to length < 1 |
# | T_nm | (h, w, h, w) | ⟨f̂n(p), f̂m(q)⟩ for every pair of locations, in [0, 1) (in [−1, 1] with centred features) |
# | S̃ | (h, w) | low-resolution co-saliency, sigmoid of the head's logits Z |
# | Tˢ_nm | (h, w, h, w) | S̃n(p) S̃m(q) T_nm(p, q): only salient-to-salient matches stay large |
#
# T grows with the fourth power of the grid side: 14 × 14 gives 38 416 entries per
# pair, 28 × 28 would give 614 656. Next, **notebook 02** finds the *co-peaks*: the
# local maxima of Tˢ that the co-peak loss pushes up.
