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
# # 00 · Quickstart: instance co-segmentation in three cells
#
# Give cosegkit a handful of images that all show the same kind of object — nobody
# says which kind, or how many per image — and it looks for every instance of that
# object and segments it. It does so by training a fresh network on the images
# themselves (DeepCO3, Hsu et al., CVPR 2019), with no labels at all.
#
# Here: street photos from Penn-Fudan, where the shared object is *a pedestrian*.
# Notebooks 01–06 take the method apart step by step.

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
from cosegkit import cosegment, preset
from cosegkit.datasets import load_pennfudan, synthetic_collection
from cosegkit.viz import collection_figure, overlay_figure
from cosegkit.widgets import show

# Fast mode (CI): 3 images, the `tiny` preset, 5 epochs. Normal mode: 12 images and the default preset
# (printed below; preset("lite") is the fastest on a CPU; on a GPU, try preset("paper") — VGG-16 as in the
# paper — which downloads ImageNet weights once).
N_IMAGES = 3 if FAST else 12
CONFIG = preset("tiny", epochs=5, device=str(DEVICE)) if FAST else preset(device=str(DEVICE))
print(f"{CONFIG.backbone} at {CONFIG.image_size} px, prior {CONFIG.prior!r}, {CONFIG.epochs} epochs")

# %% [markdown]
# ## 1 · Load a collection
#
# `load_pennfudan` looks for the `PennFudanPed` folder under `cosegkit.datasets.data_root()`
# (set the environment variable `COSEGKIT_DATA` to the folder holding it;
# `cosegkit.datasets.download_pennfudan()` fetches it). Without it, a synthetic
# collection stands in. Your own images work too: `cosegment("my_folder/", ...)`.

# %%
try:
    collection = load_pennfudan(max_images=N_IMAGES)
except FileNotFoundError as error:
    print(f"Note: Penn-Fudan not found ({str(error).splitlines()[0]})\nUsing a synthetic collection instead.")
    collection = synthetic_collection(N_IMAGES)
print(collection)

# %% [markdown]
# ## 2 · Segment
#
# One call: train the co-saliency network on these images (stage 1), then find peaks,
# back-propagate them to heat maps, generate proposals and rank them (stage 2).

# %%
result = cosegment(collection, CONFIG)
print(result)

# %% [markdown]
# ## 3 · Look, and export
#
# Every instance gets its own colour; the star marks the peak that found it and the
# label gives its rank and score. `to_coco` writes the instances as COCO *results* JSON
# (RLE masks, boxes, scores) that any COCO tool reads.
#
# Look critically: expect some masks on salient background (bright bushes, kerbs) and some
# people found in pieces or two at once. Notebooks 05 and 06 show how the ranking settings
# change this and how to measure it.

# %%
show(collection_figure(result, max_images=8, columns=min(4, len(result))))
path = result.to_coco("outputs/quickstart/instances.json", category=collection.category)
print(f"wrote {path} ({result.n_instances} instances)")

# %% [markdown]
# ## What is inside `result`
#
# For every image `result[i]` keeps the masks and scores, and everything that led to
# them: the low-resolution logits Z, the co-saliency map S, the peaks, one heat map per
# peak and the proposals. One image in detail — the photo, S with its peaks, and the
# instances:

# %%
show(overlay_figure(result[0]))
r = result[0]
print(
    f"{r.name}: masks {r.masks.shape}, scores {r.scores.round(3).tolist()}, peaks {r.peaks.shape}, "
    f"heat maps {r.heatmaps.shape}, {r.proposals.n} proposals"
)

# %% [markdown]
# With ground truth (Penn-Fudan has it) the paper's metrics are one call away
# (notebook 06 explains them), and the last step — the ranking — can be re-run with other
# settings in a fraction of a second, without training again (notebook 05):

# %%
if collection.has_ground_truth:
    print("as computed:         ", {k: round(v, 3) for k, v in result.evaluate().items()})
    paper = result.rerank(
        gamma=1e-5,
        gamma_mode="pixels",
        ranking_saliency="cosaliency",
        ranking_saliency_norm="none",
        instance_score="ranking",
    )  # the paper's ranking: S as trained, γ = 1e-5 per pixel, score R
    print("the paper's ranking: ", {k: round(v, 3) for k, v in paper.evaluate().items()})

# %% [markdown]
# **Next:** notebook 01 opens the method up, starting with the 4-D correlation tensor.
# To save everything to disk — one instance-label PNG and one overlay per image, plus
# the COCO file — use `result.save("outputs/my_run")`; from a terminal,
# `python -m cosegkit --help`.
