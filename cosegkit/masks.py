"""Operations on stacks of boolean masks ``(K, H, W)`` and on label maps, in numpy.

Evaluation, ranking, the baselines and DDT all need them, so they live here, below all of them:

- :func:`mask_iou`: the IoU of every pair of masks of two stacks;
- :func:`mask_nms`: greedy non-maximum suppression of overlapping masks;
- :func:`resize_nearest`: nearest-neighbour resize of a label map (or one mask);
- :func:`prior_components`: the connected components of a map above its mean, as masks.

    >>> a = np.zeros((1, 2, 4), bool); a[0, :, :2] = True       # left half
    >>> b = np.zeros((1, 2, 4), bool); b[0, :, 1:3] = True      # middle
    >>> mask_iou(a, b).tolist()                                 # 2 shared pixels of 6
    [[0.3333333333333333]]
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

__all__ = ["mask_iou", "mask_nms", "resize_nearest", "prior_components"]


def mask_iou(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boolean masks. ``(Ka, H, W)`` × ``(Kb, H, W)`` → ``(Ka, Kb)`` float64.

    Masks are flattened and the intersections computed as one matrix product (float32 is
    exact for counts below 2²⁴ pixels, float64 above). Two empty masks have IoU 0.
    """
    a = np.asarray(masks_a, dtype=bool)
    b = np.asarray(masks_b, dtype=bool)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"masks must be (K, H, W) with the same (H, W); got {a.shape} and {b.shape}.")
    dtype = np.float32 if a.shape[1] * a.shape[2] < 2**24 else np.float64
    a = a.reshape(len(a), -1).astype(dtype)
    b = b.reshape(len(b), -1).astype(dtype)
    inter = (a @ b.T).astype(np.float64)
    union = a.sum(axis=1, dtype=np.float64)[:, None] + b.sum(axis=1, dtype=np.float64)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mask_nms(masks_or_iou: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.4) -> np.ndarray:
    """Greedy mask non-maximum suppression. → kept indices ``(K',)``, best score first.

    masks_or_iou: boolean masks ``(K, H, W)`` or their precomputed IoU matrix ``(K, K)``;
    scores: ``(K,)``. Visit the masks by decreasing score (ties: lower index first) and drop
    a mask whose IoU with an already kept mask is ≥ ``iou_threshold``.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    x = np.asarray(masks_or_iou)
    if x.ndim == 3:
        iou = mask_iou(x, x)
    elif x.ndim == 2 and x.shape[0] == x.shape[1]:
        iou = x
    else:
        raise ValueError(f"mask_nms needs masks (K, H, W) or an IoU matrix (K, K); got shape {x.shape}.")
    if len(iou) != len(scores):
        raise ValueError(f"{len(iou)} masks but {len(scores)} scores.")
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(scores), dtype=bool)
    kept = []
    for i in order:  # loop over masks (tens), not pixels
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= iou[i] >= iou_threshold
    return np.asarray(kept, dtype=np.int64)


def resize_nearest(labels: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array (pixel centres aligned). ``(h, w)`` → ``out_shape``."""
    h, w = labels.shape
    H, W = (int(s) for s in out_shape)
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def prior_components(
    prior: np.ndarray,
    image_shape: tuple[int, int] | None = None,
    min_fraction: float = 1e-3,
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of ``prior > mean(prior)`` as instances.

    Args:
        prior: ``(h, w)`` saliency map (any scale; usually Ŝ in [0, 1]).
        image_shape: ``(H, W)`` of the returned masks (nearest-neighbour resize of the
            component labels); default ``(h, w)``.
        min_fraction: components smaller than this fraction of the image (0.1 %) are dropped.
        threshold: split the map here instead of at its mean.

    Returns:
        masks ``(K, H, W)`` bool and scores ``(K,)``, best first. A component's score is its
        *saliency mass* Σ Ŝ over its pixels / (h·w) = mean Ŝ inside × its area fraction, so
        big and strongly salient blobs rank first. Components are 8-connected.
    """
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 2:
        raise ValueError(f"prior must be one (h, w) map; got shape {prior.shape}.")
    h, w = prior.shape
    image_shape = (h, w) if image_shape is None else tuple(int(s) for s in image_shape)
    split = prior.mean() if threshold is None else threshold
    labels, n = ndi.label(prior > split, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    mass = np.bincount(labels.ravel(), weights=prior.ravel(), minlength=n + 1) / (h * w)
    ids = np.flatnonzero(areas >= min_fraction * h * w)
    ids = ids[ids > 0]  # label 0 is the background
    ids = ids[np.argsort(-mass[ids], kind="stable")]
    full = labels if image_shape == (h, w) else resize_nearest(labels, image_shape)
    return full[None] == ids[:, None, None], mass[ids]
