"""Diagnostics: numbers that say *why* a run scored what it did, against the ground truth.

Where the peaks of Z fall, how the co-saliency map S (or the prior Ŝ) separates the instances
from the rest, how well the proposals cover the instances, and a random head for the floor a
trained network has to beat. The benchmarks in ``benchmarks/`` call these; nothing here is
used by the method itself.

Shapes: an image is ``(H, W)``; ground truth of one image is ``(G, H, W)`` bool (``G`` may be 0);
Z is ``(hz, wz)`` on the network's grid; a map (S, Ŝ, any score) is ``(h, w)`` at any size.
"""

from __future__ import annotations

import numpy as np
import torch

from .baselines import best_proposal_iou, peaks_in_masks
from .evaluate import saliency_auc
from .prm import find_peaks
from .saliency import resize_map

AUC_STRIDE = 2  # saliency_scores reads every 2nd row and column: one pixel in four


def instance_union(gt: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The union of one image's instances ``(G, H, W)`` → ``(H, W)`` bool; all False when ``G = 0``
    (``shape`` is used then)."""
    return gt.any(axis=0) if len(gt) else np.zeros(shape, bool)


def mean_inside_outside(maps: list[np.ndarray], gt_masks: list[np.ndarray]) -> tuple[float, float]:
    """Mean of each map ``(H, W)`` over the union of its image's instances ``(G, H, W)`` and over the rest,
    each averaged over the images. Images whose union is empty or the whole image are left out."""
    inside, outside = [], []
    for values, gt in zip(maps, gt_masks):
        union = instance_union(gt, values.shape)
        if union.any() and not union.all():
            inside.append(values[union].mean())
            outside.append(values[~union].mean())
    return float(np.mean(inside)), float(np.mean(outside))


def mean_area_fraction(masks: list[np.ndarray]) -> float:
    """Mean area of the masks ``(K, H, W)`` of all images, as a fraction of their image; NaN without masks."""
    fractions = [m.mean(axis=(1, 2)) for m in masks if len(m)]
    return float(np.concatenate(fractions).mean()) if fractions else float("nan")


def mean_auc(maps: list, gt_masks: list[np.ndarray]) -> float:
    """Mean over images of the ROC AUC (:func:`cosegkit.evaluate.saliency_auc`) of a map ``(h, w)`` — numpy
    or torch, resized bilinearly to the mask's ``(H, W)`` — against the union of the instances ``(G, H, W)``.

    Images without instances are left out, and so (NaN) are those whose union is the whole image;
    NaN when no image is left."""
    aucs = [saliency_auc(resize_map(m, g.shape[1:]), g.any(axis=0)) for m, g in zip(maps, gt_masks) if len(g)]
    return float(np.nanmean(aucs)) if aucs else float("nan")


def mean_split_iou(saliency: np.ndarray, union: np.ndarray) -> float:
    """IoU of (saliency > its mean) with ``union``; both ``(H, W)``. 0 when both are empty."""
    found = saliency > saliency.mean()
    total = np.logical_or(found, union).sum()
    return float(np.logical_and(found, union).sum() / total) if total else 0.0


def saliency_scores(
    maps: list[np.ndarray], gt_masks: list[np.ndarray], stride: int = AUC_STRIDE
) -> tuple[float, float]:
    """Mean AUC and mean-split IoU (:func:`mean_split_iou`) of maps ``(H, W)`` against the union of each
    image's instances ``(G, H, W)`` (same size as the map).

    Both read every ``stride``-th row and column, and the map to 6 decimals (as integers, so that
    the float32 noise resizing leaves on a flat map neither breaks ties nor splits it at its mean).
    Images whose union is empty or the whole (subsampled) image are skipped; NaN when every image is."""
    aucs, ious = [], []
    for values, gt in zip(maps, gt_masks):
        sub = np.round(np.asarray(values, dtype=np.float64)[::stride, ::stride] * 1e6)
        union = gt.any(axis=0)[::stride, ::stride] if len(gt) else np.zeros(sub.shape, bool)
        if not union.any() or union.all():
            continue
        aucs.append(saliency_auc(sub, union))
        ious.append(mean_split_iou(sub, union))
    if not aucs:
        return float("nan"), float("nan")
    return float(np.mean(aucs)), float(np.mean(ious))


def peak_statistics(
    logits: list[np.ndarray],
    saliency: list[np.ndarray],
    gt_masks: list[np.ndarray],
    threshold="median",
    window: int = 3,
) -> dict:
    """Where the peaks of Z fall. logits: per image Z ``(hz, wz)``; saliency: per image S ``(H, W)``;
    gt_masks: per image ``(G, H, W)``.

    A peak is a local maximum of Z in a ``window × window`` neighbourhood; it is *used* when Z there is
    at least ``threshold`` (``"median"`` of Z, or a float in logit units); it is on an instance when its
    cell's centre is an instance pixel (:func:`cosegkit.baselines.peaks_in_masks`). Returns, as floats:

    - ``peaks``, ``used peaks``: local maxima and used peaks per image;
    - ``background``: the fraction of used peaks on no instance (of all images' used peaks);
    - ``hit``: the fraction of instances holding a used peak;
    - ``S in``, ``S out``: :func:`mean_inside_outside` of S; ``AUC``: :func:`mean_auc` of S.
    """
    n_all, n_used, on_background, hit, n_gt = 0, 0, 0, 0, 0
    for z, gt in zip(logits, gt_masks):
        peaks = find_peaks(torch.from_numpy(z), window=window, threshold=float("-inf")).numpy()
        level = np.median(z) if threshold == "median" else float(threshold)
        used = peaks[z[peaks[:, 0], peaks[:, 1]] >= level] if len(peaks) else peaks
        inside = peaks_in_masks(used, z.shape, gt)  # (M, G)
        n_all += len(peaks)
        n_used += len(used)
        on_background += int((~inside.any(axis=1)).sum())
        hit += int(inside.any(axis=0).sum())
        n_gt += len(gt)
    s_in, s_out = mean_inside_outside(saliency, gt_masks)
    n = len(logits)
    return {
        "peaks": n_all / n,
        "used peaks": n_used / n,
        "background": on_background / max(n_used, 1),
        "hit": hit / max(n_gt, 1),
        "S in": s_in,
        "S out": s_out,
        "AUC": mean_auc(saliency, gt_masks),
    }


def best_proposal_ious(proposals: list, gt_masks: list[np.ndarray]) -> np.ndarray:
    """The best proposal's IoU for every instance of every image, at the proposals' working resolution
    (:func:`cosegkit.baselines.best_proposal_iou`). proposals: per image a ``Proposals``; gt_masks: per
    image ``(G, H, W)``. Returns ``(ΣG,)`` in image order."""
    return np.concatenate([best_proposal_iou(p, g)[0] for p, g in zip(proposals, gt_masks)])


def proposal_recall(proposals: list, gt_masks: list[np.ndarray]) -> dict:
    """How well the proposals cover the instances: ``proposals`` per image (mean count), ``ABO`` (the mean
    over instances of :func:`best_proposal_ious`), ``R@0.5`` and ``R@0.7`` (the fraction of instances whose
    best proposal has at least that IoU) and ``instances`` (how many). Arguments as in :func:`best_proposal_ious`."""
    best = best_proposal_ious(proposals, gt_masks)
    return {
        "proposals": float(np.mean([p.n for p in proposals])),
        "ABO": float(best.mean()),
        "R@0.5": float(np.mean(best >= 0.5)),
        "R@0.7": float(np.mean(best >= 0.7)),
        "instances": len(best),
    }


def randomise_head(net, seed: int) -> None:
    """Draw the 1×1 head's weights ``net.head.weight (1, C, 1, 1)`` as PyTorch initialises a convolution,
    U(−1/√C, 1/√C), from a generator seeded with ``seed`` (in float64, then cast); the bias stays as it is.
    Z is then a random projection of the pretrained features: a map with peaks, heat maps and instances,
    the floor training has to beat (a zero head gives a constant Z, which has no peak)."""
    weight = net.head.weight
    bound = 1.0 / weight[0].numel() ** 0.5
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight.copy_((torch.rand(weight.shape, generator=generator, dtype=torch.float64) * 2 - 1).mul(bound).to(weight))


def record_bytes(record) -> dict:
    """Memory held by one image's record (:class:`cosegkit.pipeline.ImageResult`), in bytes, by part:
    ``heat maps``, ``proposals`` (leaf labels, membership and its caches), ``maps`` (image, S, Z, prior,
    masks) and ``total``. Counts array buffers, not Python object overhead."""
    import scipy.sparse as sp

    def nbytes(value) -> int:
        if isinstance(value, np.ndarray):
            return value.nbytes
        if sp.issparse(value):
            return sum(a.nbytes for a in (value.data, getattr(value, "indices", np.zeros(0)), value.indptr))
        if isinstance(value, dict):
            return sum(nbytes(v) for v in value.values())
        if isinstance(value, tuple):  # e.g. the contour band of proposals
            return sum(nbytes(v) for v in value)
        return 0

    proposals = sum(nbytes(v) for v in vars(record.proposals).values())
    heat = nbytes(record.heatmaps)
    entries = record.ranking_cache.values() if isinstance(record.ranking_cache, dict) else []
    cache = sum(nbytes(entry.get("terms", {})) for entry in entries)  # not its "sources": they are counted above
    maps = sum(
        nbytes(getattr(record, name))
        for name in ("image", "logits", "saliency", "saliency_work", "prior_work", "masks", "peaks", "peak_values")
    )
    return {
        "heat maps": heat,
        "proposals": proposals,
        "ranking terms": cache,
        "maps": maps,
        "total": heat + proposals + cache + maps,
    }
