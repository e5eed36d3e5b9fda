"""Baselines without the co-saliency network, and an oracle — to judge what DeepCO3 adds.

Two baselines use only the unsupervised saliency prior Ŝ (:mod:`cosegkit.saliency`):

- :func:`prior_components`: threshold Ŝ at its mean; every connected blob is an instance
  (defined in :mod:`cosegkit.masks`, where DDT finds it too).
- :func:`top_proposals_by_saliency`: the ``k`` proposals that best match the prior (soft IoU,
  or the contrast of mean Ŝ inside and outside), de-duplicated by mask NMS.

Two helpers use the ground truth and are *not* methods — they explain a number:

- :func:`best_proposal_iou`: for every ground-truth instance, the best IoU any proposal
  reaches (proposal recall; it bounds what any ranking can do).
- :func:`oracle_per_peak`: every ground-truth instance that a peak falls into gets its
  best proposal — what a perfect ranking would return from these peaks and proposals.

Example::

    >>> import numpy as np
    >>> prior = np.zeros((20, 30)); prior[2:8, 2:8] = 1.0; prior[10:18, 15:28] = 0.8
    >>> masks, scores = prior_components(prior)
    >>> masks.shape, [int(m.sum()) for m in masks]
    ((2, 20, 30), [104, 36])
"""

from __future__ import annotations

import numpy as np

from .masks import prior_components, resize_nearest
from .proposals import Proposals
from .saliency import resize_map

__all__ = [
    "prior_components",
    "proposal_saliency",
    "top_proposals_by_saliency",
    "peak_pixels",
    "peaks_in_masks",
    "best_proposal_iou",
    "oracle_per_peak",
]


def _as_proposals(proposals) -> Proposals:
    if isinstance(proposals, Proposals):
        return proposals
    return Proposals.from_masks(np.asarray(proposals))


def _at_working_resolution(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"prior must be one (h, w) map; got shape {values.shape}.")
    return values if values.shape == tuple(shape) else resize_map(values, shape).astype(np.float64)


SCORES = ("soft_iou", "contrast", "density")


def proposal_saliency(proposals, prior: np.ndarray, score: str = "soft_iou") -> np.ndarray:
    """How well each proposal matches the salient region. → ``(P,)``.

    proposals: :class:`Proposals` (or masks ``(P, h, w)``); prior Ŝ ``(h, w)`` in [0, 1], resized
    to the proposals' working resolution if needed. With ``⟨Ŝ, P⟩`` the prior summed over P
    (one sparse product, ``region_sums``, for all P) and ``|P|`` its area:

    - ``"soft_iou"``: ⟨Ŝ, P⟩ / (|P| + ΣŜ − ⟨Ŝ, P⟩), the IoU of P with Ŝ read as a soft mask.
      Highest for a proposal that covers the salient pixels and little else; 1 when Ŝ is
      exactly P's indicator.
    - ``"contrast"``: mean Ŝ inside P − mean Ŝ outside P.
    - ``"density"``: ⟨Ŝ, P⟩ / |P|, the mean Ŝ inside P.

    On a photo the outside of any object-sized P is mostly background, so the contrast
    behaves like the density: both rank a small proposal on the brightest spot of an object
    above the whole object (measured on the synthetic collection: the top proposals covered
    2–15 % of an object). The soft IoU pays for the salient pixels a proposal leaves out.
    """
    if score not in SCORES:
        raise ValueError(f"Unknown proposal score {score!r}; choose one of {SCORES}.")
    props = _as_proposals(proposals)
    S = _at_working_resolution(prior, props.shape)
    if S.min() < -1e-6 or S.max() > 1 + 1e-6:
        raise ValueError(f"prior must lie in [0, 1]; got values in [{S.min():.3g}, {S.max():.3g}]. Rescale it first.")
    areas = props.areas.astype(np.float64)
    inside = props.region_sums(S)  # (P,)
    if score == "soft_iou":
        union = areas + S.sum() - inside
        return np.divide(inside, union, out=np.zeros_like(inside), where=union > 0)
    mean_in = np.divide(inside, areas, out=np.zeros_like(inside), where=areas > 0)
    if score == "density":
        return mean_in
    outside_area = S.size - areas
    return mean_in - np.divide(S.sum() - inside, outside_area, out=np.zeros_like(inside), where=outside_area > 0)


def top_proposals_by_saliency(
    proposals,
    prior: np.ndarray,
    k: int = 3,
    nms_iou: float = 0.4,
    out_shape: tuple[int, int] | None = None,
    score: str = "soft_iou",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` proposals that best match the prior (:func:`proposal_saliency`), after greedy mask NMS.

    Args:
        proposals: :class:`Proposals` (or masks ``(P, h, w)``) at the working resolution ``(h, w)``.
        prior: ``(h, w)`` saliency map in [0, 1] (resized to the proposals' resolution if needed).
        k: how many instances to return per image (fewer if NMS leaves fewer).
        nms_iou: a proposal whose IoU with an already kept one is ≥ this is skipped.
        out_shape: ``(H, W)`` of the returned masks; default the working resolution.
        score: ``"soft_iou"`` (default), ``"contrast"`` or ``"density"``, see :func:`proposal_saliency`.

    Returns:
        masks ``(K, H, W)`` bool and scores ``(K,)``, best first, ``K ≤ k``.
    """
    props = _as_proposals(proposals)
    scores = proposal_saliency(props, prior, score)
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(props.n, dtype=bool)
    kept = []
    for i in order:  # stops after k kept proposals: at most k IoU rows of (1, P)
        if len(kept) == k:
            break
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= props.iou_matrix([i], np.arange(props.n))[0] >= nms_iou
    kept = np.asarray(kept, dtype=np.int64)
    shape = props.shape if out_shape is None else tuple(out_shape)
    masks = props.masks(kept, out_shape=shape) if len(kept) else np.zeros((0, *shape), bool)
    return masks, scores[kept]


# ---------------------------------------------------------------------------- oracle


def peak_pixels(peaks: np.ndarray, grid_shape: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Centres of the peaks' grid cells in pixels. ``(M, 2)`` cells on a ``grid_shape`` map → ``(M, 2)`` int.

    Cell (r, c) of an (hz, wz) grid covers rows [r·H/hz, (r+1)·H/hz) of an (H, W) image;
    its centre is at row ⌊(r + ½)·H/hz⌋ (the same mapping the figures use).
    """
    peaks = np.asarray(peaks, dtype=np.float64).reshape(-1, 2)
    scale = np.asarray(shape, dtype=np.float64) / np.asarray(grid_shape, dtype=np.float64)
    pixels = np.floor((peaks + 0.5) * scale).astype(np.int64)
    return np.minimum(pixels, np.asarray(shape) - 1)


def peaks_in_masks(peaks: np.ndarray, grid_shape: tuple[int, int], masks: np.ndarray) -> np.ndarray:
    """Which peak falls into which mask: ``(M, 2)`` peaks, masks ``(G, H, W)`` → ``(M, G)`` bool.

    A peak is inside a mask when its cell centre (:func:`peak_pixels`) is a pixel of it.
    """
    masks = np.asarray(masks, dtype=bool)
    rows, cols = peak_pixels(peaks, grid_shape, masks.shape[1:]).T
    return masks[:, rows, cols].T


def best_proposal_iou(proposals, gt_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best proposal for every ground-truth instance, at the proposals' working resolution.

    proposals: :class:`Proposals` ``(P proposals at (h, w))``; gt_masks ``(G, H, W)`` bool at any
    resolution (nearest-neighbour resized to ``(h, w)``). Returns ``best_iou (G,)`` and
    ``best_index (G,)`` (index into the proposals; 0 with IoU 0 when there are none).
    """
    props = _as_proposals(proposals)
    gt = np.asarray(gt_masks, dtype=bool)
    if len(gt) == 0 or props.n == 0:
        return np.zeros(len(gt)), np.zeros(len(gt), dtype=np.int64)
    gt_work = np.stack([resize_nearest(m, props.shape) for m in gt]).astype(np.float64)  # (G, h, w)
    inter = props.region_sums(gt_work)  # (P, G)
    union = props.areas[:, None] + gt_work.sum(axis=(1, 2))[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    best = iou.argmax(axis=0)
    return iou[best, np.arange(len(gt))], best


def oracle_per_peak(
    proposals,
    peaks: np.ndarray,
    grid_shape: tuple[int, int],
    gt_masks: np.ndarray,
    out_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An upper bound for the ranking: each instance a peak falls into gets its best proposal.

    For every ground-truth instance (``gt_masks (G, H, W)``) that holds at least one peak's
    cell centre (``peaks (M, 2)`` on a ``grid_shape`` grid, see :func:`peaks_in_masks`), the
    proposal with the highest IoU against it is returned, scored by that IoU; a proposal
    chosen for two instances is kept once. Peaks on the background return nothing — the
    oracle also knows which peaks to ignore. Instances without a peak cannot be found.

    Returns masks ``(K, H', W')`` (``out_shape``, default the proposals' working resolution)
    and scores ``(K,)``, best first.
    """
    props = _as_proposals(proposals)
    gt = np.asarray(gt_masks, dtype=bool)
    shape = props.shape if out_shape is None else tuple(out_shape)
    empty = np.zeros((0, *shape), bool), np.zeros(0)
    if len(gt) == 0 or len(peaks) == 0:
        return empty
    hit = peaks_in_masks(peaks, grid_shape, gt).any(axis=0)  # (G,)
    best_iou, best_index = best_proposal_iou(props, gt[hit])
    if len(best_iou) == 0:
        return empty
    order = np.argsort(-best_iou, kind="stable")
    _, first = np.unique(best_index[order], return_index=True)  # one entry per proposal, its best IoU
    chosen = order[np.sort(first)]
    return props.masks(best_index[chosen], out_shape=shape), best_iou[chosen]
