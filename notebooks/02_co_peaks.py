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
# # 02 · Co-peaks: local maxima in four dimensions
#
# Notebook 01 built the saliency-guided tensor Tˢ_nm(p, q), shape (h, w, h, w): how
# strongly a salient location p of image n matches a salient location q of image m.
# DeepCO3 does not reward *all* of Tˢ. It rewards its **co-peaks** (spec §3):
#
# > a location pair (p, q) where Tˢ is a local maximum of its 3×3×3×3 neighbourhood
# > (window clipped at the borders) **and** Tˢ(p, q) is at least the median of all Tˢ
# > values of the pair.
#
# "Neighbourhood" means: move p by at most one grid cell in image n *and* q by at most
# one cell in image m — 3⁴ = 81 entries, the pair itself included. A co-peak is a
# pair of locations that match each other better than any slightly shifted pair: two
# corresponding parts of the common object, seen in two images.
#
# You will compute co-peaks two ways (brute force and the separable max filter), see
# what the window size and the median threshold do, and draw the co-peaks as lines
# joining the two images.

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
import torch
import torch.nn.functional as F

from cosegkit import preset
from cosegkit.correlation import co_peaks, max_filter_4d
from cosegkit.losses import copeak_loss
from cosegkit.widgets import (
    copeaks_explorer,
    copeaks_view,
    example_collection,
    fit_cached,
    network_maps,
    pair_tensors,
    show,
)

# The same settings as notebook 01, so the trained network is loaded from outputs/notebooks/.
N_IMAGES = 4 if FAST else 8
CONFIG = preset("lite", device=str(DEVICE), progress=not FAST)
if FAST:
    CONFIG = CONFIG.replace(image_size=256, epochs=4)

collection = example_collection("pennfudan", N_IMAGES)
fitted = fit_cached(collection, CONFIG)
f_all, s_all = network_maps(fitted)  # f̂ (N, C, h, w), S̃ (N, h, w)
n, m = 0, 1
T, Ts = pair_tensors(f_all, s_all, n, m)  # (h, w, h, w) each
print(collection)
print("Tˢ of the pair", (n, m), "has shape", tuple(Ts.shape), f"= {Ts.numel():,} location pairs")

# %% [markdown]
# ## A 4-D max filter, the brute-force way
#
# To know whether Tˢ(p, q) is a local maximum we need M(p, q), the maximum of Tˢ over
# the 81 entries around it. Brute force: pad Tˢ with −∞ on every side (so that the
# window is *clipped* at the borders — padding never wins a maximum), then take the
# element-wise maximum of the 81 shifted copies. That is a loop over the 81 offsets,
# not over entries: each step handles the whole tensor at once.


# %%
def brute_force_max_filter_4d(x: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Max over the window⁴ neighbourhood of every entry of x (h, w, h', w'), from all window⁴ shifted copies."""
    r = window // 2
    padded = F.pad(x, (r, r) * 4, value=float("-inf"))  # (h+2r, w+2r, h'+2r, w'+2r)
    h, w, h2, w2 = x.shape
    out = torch.full_like(x, float("-inf"))
    for a in range(window):
        for b in range(window):
            for c in range(window):
                for d in range(window):
                    out = torch.maximum(out, padded[a : a + h, b : b + w, c : c + h2, d : d + w2])
    return out


M_brute = brute_force_max_filter_4d(Ts)
print("M has the shape of Tˢ:", tuple(M_brute.shape))

# %% [markdown]
# ## The separable trick
#
# The 3×3×3×3 window is a product of four intervals, one per axis. The maximum over a
# product of sets can be taken one set at a time:
#
# $$\max_{|a|,|b|,|c|,|d| \le 1} T(i{+}a, j{+}b, k{+}c, l{+}d)
#   = \max_{|a|\le1}\Big(\max_{|b|\le1}\Big(\max_{|c|\le1}\Big(\max_{|d|\le1} T(\dots)\Big)\Big)\Big)$$
#
# So a 4-D max filter is four **1-D** max filters of width 3, one along each axis:
# 4 × 3 = 12 values looked at per entry instead of 81 (for a window of 5: 20 instead
# of 625). `cosegkit.correlation.max_filter_4d` does exactly that (and works on a batch
# of pairs, `(B, h, w, h, w)`). The two must agree **exactly** — max involves no rounding.

# %%
M_separable = max_filter_4d(Ts[None], window=3)[0]
print("separable == brute force on Tˢ:", torch.equal(M_separable, M_brute))

x = torch.rand(14, 14, 14, 14)  # the size of a 448-px pair, random values
for window in (3,) if FAST else (3, 5):  # brute force with window 5 takes seconds
    t0 = time.perf_counter()
    slow = brute_force_max_filter_4d(x, window)
    t1 = time.perf_counter()
    fast = max_filter_4d(x[None], window)[0]
    t2 = time.perf_counter()
    print(
        f"window {window}: equal {torch.equal(slow, fast)} | brute force {1e3 * (t1 - t0):6.1f} ms "
        f"({window**4} shifted copies), separable {1e3 * (t2 - t1):5.1f} ms ({4 * window} values per entry)"
    )

# %% [markdown]
# ## From the max filter to co-peaks
#
# An entry is a local maximum where it **equals** the maximum of its window:
# `is_max = Ts == M`. (On a plateau of equal values every member counts; the global
# maximum is always among them, so there is always at least one.)
#
# Then the threshold. A local maximum only says "larger than its neighbours": in the
# dark part of Tˢ — pairs where p or q is background, Tˢ ≈ 0 — tiny ripples also make
# local maxima, and they say nothing about the common object. The authors' code keeps
# a local maximum only if Tˢ(p, q) ≥ **the median of all Tˢ values of that pair**: at
# least as strong as a typical pair. (The paper itself states no threshold; cosegkit trains
# with the median, and `co_peaks(Ts, threshold="none")` shows the other.)

# %%
is_max = Ts == M_separable
median = torch.quantile(Ts.flatten(), 0.5)  # mean of the two middle values (Ts.median() would give the lower one)
mine = is_max & (Ts >= median)
print(f"local maxima: {int(is_max.sum())} | median of Tˢ: {median:.2e} | co-peaks (≥ median): {int(mine.sum())}")
print("same as cosegkit.correlation.co_peaks:", torch.equal(mine, co_peaks(Ts[None])[0]))

fig, ax = plt.subplots(figsize=(8, 3.4))
bins = np.linspace(0, float(Ts.max()), 60)
ax.hist(Ts.flatten().numpy(), bins=bins, color="lightgray", label="all Tˢ(p, q)")
ax.hist(Ts[is_max].numpy(), bins=bins, color="tab:blue", label="local maxima")
ax.axvline(float(median), color="tab:red", ls="--", label="median (threshold)")
ax.set(
    yscale="log",
    xlabel="Tˢ(p, q)",
    ylabel="number of location pairs",
    title=f"Tˢ of pair ({n}, {m}) and its local maxima",
)
ax.legend()
show(fig)

# %% [markdown]
# Most of Tˢ is small (the log-scaled histogram piles up near 0) and the local maxima
# sit mostly far to the right of the median — so the median removes only the few local
# maxima that live in the dark region. The spec measured ~150–280 co-peaks per pair on
# a 14 × 14 grid and found that "the median threshold rarely bites"; check it for all
# pairs of this collection and for other window sizes:

# %%
print("window | threshold | co-peaks per pair (mean over all pairs n < m)")
pairs = [(a, b) for a in range(len(collection)) for b in range(a + 1, len(collection))]
Ts_all = torch.stack([pair_tensors(f_all, s_all, a, b)[1] for a, b in pairs])  # (pairs, h, w, h, w)
for window in (1, 3, 5, 7):
    for threshold in ("none", "median"):
        count = co_peaks(Ts_all, window=window, threshold=threshold).flatten(1).sum(1).float().mean()
        print(f"{window:>6} | {threshold:>9} | {count:8.1f}")

# %% [markdown]
# - **window 1**: every entry is the maximum of its own 1-entry window, so "none" keeps
#   all (hw)² pairs and "median" keeps the upper half — no selection at all.
# - **window 3** (the method): from about ten co-peaks per pair on an 8 × 8 grid (fast
#   mode) to a few hundred on 14 × 14.
# - **larger windows**: fewer, more isolated co-peaks. A bigger window demands that a
#   match beat every pair shifted by up to 2 or 3 cells — on a 14 × 14 grid that is a
#   large part of the image.
#
# ## Co-peaks as lines between the two images
#
# Each co-peak (p, q) is drawn as a line from p in image n to q in image m; colour is
# the value Tˢ(p, q) (the strongest 40 are drawn). If the co-saliency map singled out
# the people, the strong lines would join person to person. Expect many that do not:
# the learned S̃ follows its saliency prior, which also likes bushes and the yellow
# kerb, so strong co-peaks often join bush to bush (the spec reports that the trained map
# did not beat the prior on Penn-Fudan). Those are exactly the pairs the co-peak loss
# then rewards — one more view of the open question of notebook 03.

# %%
peaks, values, fig = copeaks_view(collection[n], collection[m], Ts, window=3, threshold="median")
show(fig)
print("the 5 strongest co-peaks (p_row, p_col, q_row, q_col) and their Tˢ:")
for peak, value in zip(peaks[:5], values[:5]):
    print(f"  {tuple(int(v) for v in peak)}  {value:.2e}")

# %% [markdown]
# ## Explore
#
# Change the pair, the window and the threshold. Questions to answer:
#
# 1. How many co-peaks does the median threshold remove for window 3? For window 1?
# 2. Do the strongest lines join corresponding body parts (head to head, legs to legs)?
# 3. With window 7, are the remaining co-peaks on the people?

# %%
copeaks_explorer(collection.images, f_all, s_all, n=n, m=m)

# %% [markdown]
# ## What the loss does with the co-peaks
#
# The co-peak set M_nm is chosen **without gradient** (it is just a boolean mask). The
# co-peak loss then uses the values of Tˢ at the mask — their mean a — and asks for it
# to be large (spec §4):
#
# - code (default): ℓt = −log σ(a)
# - paper: ℓt = −log(a)
#
# Gradients flow into the features and both co-saliency maps through Tˢ = S̃n S̃m T,
# so training raises the saliency of the locations that form co-peaks and makes their
# features more alike. Notebook 03 looks at this loss during training.

# %%
mask = co_peaks(Ts[None])  # (1, h, w, h, w) bool
a = Ts[mask[0]].mean()
print(f"mean Tˢ over the {int(mask.sum())} co-peaks: a = {a:.4f}")
code_form = float(copeak_loss(Ts[None], mask, form="code")[0])
print(f"code form  −log σ(a) = {code_form:.4f}  (log 2 = {np.log(2):.4f} at a = 0)")
print(f"paper form −log(a)   = {float(copeak_loss(Ts[None], mask, form='paper')[0]):.4f}")

# %% [markdown]
# Because Tˢ ∈ [0, 1) (the paper's T, as built here), the code form stays between −log σ(1) ≈ 0.31 and log 2 ≈ 0.69
# and is nearly flat; the paper form is much steeper for small a. The spec (§5)
# measured the code form as "nearly flat, with a small gradient".
#
# ## Exercise
#
# Re-implement `co_peaks` for one pair with **scipy**: `scipy.ndimage.maximum_filter`
# with `size=3`, `mode="constant"` and `cval=-np.inf` is the clipped 4-D max filter, and
# `np.median` gives the threshold. Check that your mask equals `co_peaks(Ts[None])[0]`.
#
# <details>
# <summary>Solution (click to open)</summary>
#
# ```python
# from scipy import ndimage
#
# values = Ts.numpy()                                           # (h, w, h, w)
# window_max = ndimage.maximum_filter(values, size=3, mode="constant", cval=-np.inf)
# my_peaks = (values == window_max) & (values >= np.median(values))
# print(np.array_equal(my_peaks, co_peaks(Ts[None])[0].numpy()))
# ```
# `np.median` of an even number of values is the mean of the two middle ones — the same
# rule `co_peaks` uses.
# </details>

# %%
# your code here
