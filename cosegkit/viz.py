"""Matplotlib figures: instances in colours, co-saliency maps, co-peaks, heat maps, loss curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps


def instance_colors(k: int) -> np.ndarray:
    """k distinct RGB colours in [0, 1], (k, 3) — tab10, then tab20, then hsv."""
    if k <= 10:
        return np.asarray(colormaps["tab10"].colors[:k])
    if k <= 20:
        return np.asarray(colormaps["tab20"].colors[:k])
    return colormaps["hsv"](np.linspace(0, 1, k, endpoint=False))[:, :3]


def overlay(image: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 + (K, H, W) bool → (H, W, 3) float in [0, 1]: each instance tinted in its colour,
    the best (first) instance on top, a dark outline around every instance."""
    from scipy import ndimage

    out = image.astype(np.float32) / 255.0
    colors = instance_colors(len(masks))
    for k in range(len(masks) - 1, -1, -1):
        m = masks[k]
        out[m] = (1 - alpha) * out[m] + alpha * colors[k]
        edge = m & ~ndimage.binary_erosion(m, iterations=2)
        out[edge] = colors[k] * 0.6
    return out


def show_instances(r, ax=None, show_peaks: bool = True, title: str | None = None):
    """One image's instances (an :class:`cosegkit.pipeline.ImageResult`) with scores and peaks."""
    ax = ax or plt.subplots(figsize=(6, 6))[1]
    ax.imshow(overlay(r.image, r.masks))
    colors = instance_colors(len(r.masks))
    h, w = r.shape
    hz, wz = r.logits.shape
    for k, (peak_id, score) in enumerate(zip(r.instance_peaks, r.scores)):
        y, x = (r.peaks[peak_id] + 0.5) * (h / hz, w / wz)
        if show_peaks:
            ax.plot(x, y, marker="*", ms=14, mec="white", mfc=colors[k])
        ax.text(
            x,
            y - 0.03 * h,
            f"#{k + 1} {score:.3f}",
            color="white",
            fontsize=8,
            ha="center",
            bbox=dict(facecolor=colors[k], alpha=0.8, pad=1, lw=0),
        )
    ax.set_title(title or f"{r.name}: {len(r.masks)} instance(s)")
    ax.axis("off")
    return ax


def overlay_figure(r) -> plt.Figure:
    """Image | co-saliency S with peaks | instances — the figure ``Result.save`` writes per image."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    axes[0].imshow(r.image)
    axes[0].set_title(r.name)
    im = axes[1].imshow(r.saliency, cmap="magma", vmin=0, vmax=1)
    h, w = r.shape
    hz, wz = r.logits.shape
    ys, xs = ((r.peaks + 0.5) * (h / hz, w / wz)).T if len(r.peaks) else ([], [])
    axes[1].plot(xs, ys, "c+", ms=8, label="peaks of Z")
    axes[1].set_title("co-saliency S and its peaks")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    show_instances(r, ax=axes[2], title=f"{len(r.masks)} instance(s)")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def collection_figure(result, max_images: int = 8, columns: int = 4) -> plt.Figure:
    """A grid of the first ``max_images`` images with their instances."""
    n = min(len(result), max_images)
    rows = int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        show_instances(result[i], ax=axes.flat[i])
    fig.suptitle(f"cosegkit: {result.n_instances} instances in {len(result)} images", fontsize=13)
    fig.tight_layout()
    return fig


def cosaliency_figure(images, priors, saliency, max_images: int = 6) -> plt.Figure:
    """Rows: image, saliency prior Ŝ, learned co-saliency S (all (H, W) per image)."""
    n = min(len(images), max_images)
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i])
        axes[1, i].imshow(priors[i], cmap="magma", vmin=0, vmax=1)
        im = axes[2, i].imshow(saliency[i], cmap="magma", vmin=0, vmax=1)
    for row, label in enumerate(["image", "prior Ŝ", "co-saliency S"]):
        axes[row, 0].set_ylabel(label, fontsize=11)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[1:, :].ravel().tolist(), fraction=0.02, pad=0.01, label="saliency")
    return fig


def copeaks_figure(image_n, image_m, peaks, values=None, grid=None, max_lines: int = 40) -> plt.Figure:
    """Co-peaks as lines joining the two images side by side.

    peaks: (K, 4) integer (pn_row, pn_col, qm_row, qm_col) on the feature grid ``grid = (h, w)``;
    values: (K,) Tˢ at each co-peak (the strongest ``max_lines`` are drawn, brighter = stronger)."""
    from matplotlib.patches import ConnectionPatch

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.6))
    a.imshow(image_n)
    b.imshow(image_m)
    a.axis("off")
    b.axis("off")
    peaks = np.asarray(peaks)
    values = np.ones(len(peaks)) if values is None else np.asarray(values)
    order = np.argsort(-values)[:max_lines]
    h, w = grid
    cmap = colormaps["viridis"]
    vmax = values[order].max() if len(order) else 1.0
    for k in order:
        pr, pc, qr, qc = peaks[k]
        p = ((pc + 0.5) * image_n.shape[1] / w, (pr + 0.5) * image_n.shape[0] / h)
        q = ((qc + 0.5) * image_m.shape[1] / w, (qr + 0.5) * image_m.shape[0] / h)
        color = cmap(values[k] / vmax if vmax > 0 else 1.0)
        fig.add_artist(
            ConnectionPatch(xyA=p, xyB=q, coordsA="data", coordsB="data", axesA=a, axesB=b, color=color, lw=1.2)
        )
        a.plot(*p, "o", color=color, ms=4)
        b.plot(*q, "o", color=color, ms=4)
    fig.suptitle(f"{len(peaks)} co-peaks; the {len(order)} strongest drawn (colour = Tˢ)")
    return fig


def heatmaps_figure(r, peak_ids=None, max_maps: int = 6) -> plt.Figure:
    """The heat maps (peak back-propagation) of some peaks of one image, each with its peak marked."""
    peak_ids = np.arange(min(len(r.peaks), max_maps)) if peak_ids is None else np.asarray(peak_ids)[:max_maps]
    n = max(1, len(peak_ids))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    hz, wz = r.logits.shape
    for ax, i in zip(axes[0], peak_ids):
        heat = r.heatmaps[i]
        ax.imshow(r.image)
        ax.imshow(heat / (heat.max() + 1e-12), cmap="jet", alpha=0.55, extent=(0, r.shape[1], r.shape[0], 0))
        y, x = (r.peaks[i] + 0.5) * (r.shape[0] / hz, r.shape[1] / wz)
        ax.plot(x, y, "w*", ms=12, mec="k")
        ax.set_title(f"peak {i}: Z = {r.peak_values[i]:.2f}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def history_figure(history: list[dict]) -> plt.Figure:
    """Training curves: total loss and its three parts per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    for ax, key in zip(axes, ["total", "copeak", "affinity", "saliency"]):
        ax.plot(epochs, [h[key] for h in history], "o-", ms=3)
        ax.set_title(f"{key} loss")
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig
