"""Instance co-segmentation metrics of DeepCO3 (spec §8): mAPʳ, CorLocʳ, and COCO segm AP.

Inputs, one entry per image, at the image's **original resolution** ``(H, W)``:

- ``predictions[n] = (masks, scores)``: boolean masks ``(K, H, W)`` and scores ``(K,)``
  (K may be 0);
- ``ground_truth[n]``: boolean instance masks ``(G, H, W)`` (G may be 0);
- optional ``categories[n]``: the category of image n. Metrics are computed per category
  and averaged over categories (mAP = mean AP). Without it all images are one category.

Example::

    >>> import numpy as np
    >>> gt = np.zeros((1, 4, 4), bool); gt[0, :2, :2] = True
    >>> evaluate([(gt.copy(), np.array([0.9]))], [gt])
    {'mAP_r@0.25': 1.0, 'mAP_r@0.5': 1.0, 'CorLoc_r': 1.0}
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from scipy.stats import rankdata

from .masks import mask_iou  # (K, H, W) × (G, H, W) → (K, G); flattened masks, one matrix product

__all__ = ["average_precision", "map_r", "corloc_r", "coco_segm_ap", "evaluate", "precision_recall", "saliency_auc"]

# mask_iou: measured on 500 × 375 masks, 2-core CPU: K=20 × G=5 blobs 4 ms by matrix product
# against 21 ms through pycocotools RLE (encode + maskUtils.iou); K=100 × G=10 23 ms vs 26 ms,
# and the product does not slow down on ragged masks (RLE: 0.9 s on noise). So: matrix product.


def average_precision(tp_flags_sorted: np.ndarray, n_gt: int) -> float:
    """VOC all-point interpolated AP from the TP/FP flags of predictions sorted by score. ``(K,)`` → float.

    precision_k = TP_k / k and recall_k = TP_k / n_gt after the first k predictions; the
    precision is made monotone from the right (p_k ← max_{j ≥ k} p_j) and AP is the area
    under that step curve, Σ_k (r_k − r_{k−1}) p_k. Returns 0.0 when there are no
    predictions or no ground-truth instances (``n_gt == 0``: nothing can be recalled).
    """
    tp = np.asarray(tp_flags_sorted, dtype=bool).reshape(-1)
    if tp.size == 0 or n_gt <= 0:
        return 0.0
    true_positives = np.cumsum(tp)
    recall = true_positives / n_gt
    precision = true_positives / np.arange(1, tp.size + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone from the right
    recall_step = np.diff(recall, prepend=0.0)
    return float(np.sum(recall_step * precision))


def map_r(
    predictions: list,
    ground_truth: list,
    thresholds: tuple[float, ...] = (0.25, 0.5),
    categories: list | None = None,
) -> dict[float, float]:
    """mAPʳ at each IoU threshold t. → ``{t: mAP}``.

    Per category: pool the predictions of all its images and visit them by decreasing
    score (ties: image order, then mask order). Each prediction is matched to the
    not-yet-matched ground-truth instance *of its image* with the highest mask IoU; it is a
    true positive if that IoU is **strictly greater** than t (the instance is then
    used up), otherwise a false positive. AP: :func:`average_precision`. Returns the mean
    over categories that have at least one ground-truth instance (0.0 if none has).
    """
    per_image = _ious_per_image(predictions, ground_truth)
    return _map_r(per_image, _categories(categories, len(per_image)), thresholds)


def corloc_r(predictions: list, ground_truth: list, iou: float = 0.5, categories: list | None = None) -> float:
    """CorLocʳ: fraction of images whose top-scored mask has IoU **≥** ``iou`` with some instance.

    An image without predictions counts as wrong; images without ground-truth instances
    are left out. Averaged over the categories that have such images (0.0 if none has).
    """
    per_image = _ious_per_image(predictions, ground_truth)
    return _corloc_r(per_image, _categories(categories, len(per_image)), iou)


def coco_segm_ap(predictions: list, ground_truth: list, categories: list | None = None) -> dict[str, float]:
    """COCO-style mask AP through ``pycocotools.cocoeval.COCOeval`` (``iouType="segm"``).

    **A different protocol from mAPʳ**: AP averaged over IoU 0.50:0.05:0.95, 101-point
    interpolation, at most 100 detections per image, a match needs IoU ≥ t. Use it to
    compare with COCO-trained models, not with the DeepCO3 paper's numbers.

    The ground truth and the results are built in memory (RLE with
    ``pycocotools.mask.encode``). Returns ``{"AP", "AP50", "AP75", "APs", "APm", "APl"}``
    (COCOeval's first six stats; −1 where no instance falls in a size range); all 0.0 when
    there are no predictions at all.
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    _check_lengths(predictions, ground_truth)
    cats = _categories(categories, len(ground_truth))
    category_id = {c: k + 1 for k, c in enumerate(dict.fromkeys(cats))}

    images, gt_anns, results = [], [], []
    for n, (pred, gt) in enumerate(zip(predictions, ground_truth)):
        gt = _as_masks(gt, "ground_truth", n)
        masks, scores = _as_prediction(pred, gt.shape[1:], n)
        H, W = gt.shape[1:]
        images.append({"id": n + 1, "height": int(H), "width": int(W)})
        cat = category_id[cats[n]]
        for rle in _encode(mask_utils, gt):
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": n + 1,
                    "category_id": cat,
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": mask_utils.toBbox(rle).tolist(),
                    "iscrowd": 0,
                }
            )
        for rle, score in zip(_encode(mask_utils, masks), scores):
            results.append({"image_id": n + 1, "category_id": cat, "segmentation": rle, "score": float(score)})
    if not results:
        return {name: 0.0 for name in names}

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": gt_anns,
            "categories": [{"id": i, "name": str(c)} for c, i in category_id.items()],
        }
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {name: float(v) for name, v in zip(names, coco_eval.stats[:6])}


def evaluate(
    predictions: list,
    ground_truth: list,
    categories: list | None = None,
    coco: bool = False,
) -> dict[str, float]:
    """All DeepCO3 metrics in one call. → ``{"mAP_r@0.25", "mAP_r@0.5", "CorLoc_r"}``.

    With ``coco=True`` also ``"COCO_AP"``, ``"COCO_AP50"``, ``"COCO_AP75"`` from
    :func:`coco_segm_ap` (a different protocol). Mask IoUs are computed once per image.
    """
    per_image = _ious_per_image(predictions, ground_truth)
    cats = _categories(categories, len(per_image))
    ap = _map_r(per_image, cats, (0.25, 0.5))
    out = {"mAP_r@0.25": ap[0.25], "mAP_r@0.5": ap[0.5], "CorLoc_r": _corloc_r(per_image, cats, 0.5)}
    if coco:
        stats = coco_segm_ap(predictions, ground_truth, categories)
        out.update({f"COCO_{k}": stats[k] for k in ("AP", "AP50", "AP75")})
    return out


# ------------------------------------------------------------------ internals


def precision_recall(predictions: list, ground_truth: list, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision–recall curve of pooled predictions, matched as mAPʳ matches them (spec §8).

    predictions: per image ``(masks (K, H, W) bool, scores (K,))``; ground_truth: per image
    ``(G, H, W) bool``. Returns ``precision (K_total,)``, ``recall (K_total,)`` after each
    prediction in order of decreasing score, and the AP (VOC all-point interpolated), which
    equals :func:`map_r` for one category.
    """
    per_image = _ious_per_image(predictions, ground_truth)
    flags = _tp_flags(per_image, iou)
    n_gt = sum(iou_matrix.shape[1] for iou_matrix, _ in per_image)
    tp = np.cumsum(flags)
    precision = tp / np.arange(1, len(flags) + 1) if len(flags) else np.zeros(0)
    recall = tp / max(n_gt, 1)
    return precision, recall, average_precision(flags, n_gt)


def _map_r(per_image: list, cats: list, thresholds) -> dict[float, float]:
    result = {}
    for t in thresholds:
        aps = []
        for c in dict.fromkeys(cats):
            members = [per_image[n] for n in range(len(per_image)) if cats[n] == c]
            n_gt = sum(iou.shape[1] for iou, _ in members)
            if n_gt > 0:
                aps.append(average_precision(_tp_flags(members, t), n_gt))
        result[t] = float(np.mean(aps)) if aps else 0.0
    return result


def _tp_flags(members: list, threshold: float) -> np.ndarray:
    """TP flags of the pooled predictions of some images, sorted by decreasing score."""
    image_of = np.concatenate([np.full(len(s), n) for n, (_, s) in enumerate(members)] + [np.zeros(0, int)])
    row_of = np.concatenate([np.arange(len(s)) for _, s in members] + [np.zeros(0, int)])
    scores = np.concatenate([s for _, s in members] + [np.zeros(0)])
    order = np.argsort(-scores, kind="stable")
    used = [np.zeros(iou.shape[1], dtype=bool) for iou, _ in members]
    flags = np.zeros(len(order), dtype=bool)
    for k, p in enumerate(order):  # loop over predictions, not pixels
        iou, _ = members[image_of[p]]
        free = np.where(used[image_of[p]], -np.inf, iou[row_of[p]])
        if free.size == 0:
            continue
        best = int(np.argmax(free))
        if free[best] > threshold:
            flags[k] = True
            used[image_of[p]][best] = True
    return flags


def _corloc_r(per_image: list, cats: list, threshold: float) -> float:
    rates = []
    for c in dict.fromkeys(cats):
        correct = [
            len(s) > 0 and iou[np.argmax(s)].max() >= threshold  # top-scored mask (first on ties)
            for n, (iou, s) in enumerate(per_image)
            if cats[n] == c and iou.shape[1] > 0
        ]
        if correct:
            rates.append(np.mean(correct))
    return float(np.mean(rates)) if rates else 0.0


def _ious_per_image(predictions: list, ground_truth: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image ``(iou (K, G), scores (K,))``."""
    _check_lengths(predictions, ground_truth)
    per_image = []
    for n, (pred, gt) in enumerate(zip(predictions, ground_truth)):
        gt = _as_masks(gt, "ground_truth", n)
        masks, scores = _as_prediction(pred, gt.shape[1:], n)
        if len(masks) and len(gt):
            iou = mask_iou(masks, gt)
        else:
            iou = np.zeros((len(masks), len(gt)))
        per_image.append((iou, scores))
    return per_image


def _check_lengths(predictions: list, ground_truth: list) -> None:
    if len(predictions) != len(ground_truth):
        raise ValueError(
            f"{len(predictions)} predictions but {len(ground_truth)} ground-truth entries; give one per image."
        )


def _as_masks(x, what: str, n: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(
            f"{what}[{n}] must be a stack of boolean instance masks (K, H, W); got shape {x.shape}. "
            "For a label map use np.stack([labels == k for k in ids])."
        )
    return x.astype(bool, copy=False)


def _as_prediction(pred, shape: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        masks, scores = pred
    except (TypeError, ValueError):
        raise ValueError(f"predictions[{n}] must be a pair (masks (K, H, W), scores (K,)).") from None
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    masks = np.asarray(masks)
    if masks.size == 0 and scores.size == 0:
        return np.zeros((0, *shape), dtype=bool), scores
    masks = _as_masks(masks, "predictions", n)
    if masks.shape[1:] != tuple(shape):
        raise ValueError(
            f"predictions[{n}] masks are {masks.shape[1:]} but the ground truth is {tuple(shape)}; "
            "evaluate at the original image resolution (resize the masks with nearest neighbour)."
        )
    if len(masks) != len(scores):
        raise ValueError(f"predictions[{n}] has {len(masks)} masks but {len(scores)} scores.")
    return masks, scores


def _categories(categories: list | None, n_images: int) -> list:
    if categories is None:
        return [0] * n_images
    if len(categories) != n_images:
        raise ValueError(f"{len(categories)} categories for {n_images} images; give one category per image.")
    return list(categories)


def _encode(mask_utils, masks: np.ndarray) -> list[dict]:
    """``(K, H, W)`` bool → K COCO RLEs."""
    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


# ------------------------------------------------------------ co-saliency maps
def saliency_auc(saliency: np.ndarray, foreground: np.ndarray) -> float:
    """ROC AUC of a saliency map against a foreground mask: the chance that a random object pixel
    scores higher than a random background pixel (0.5 = no better than chance, < 0.5 = inverted).

    saliency: ``(H, W)`` float; foreground: ``(H, W)`` bool. Ties count one half (Mann–Whitney U).
    Returns NaN when the mask is all object or all background.
    """
    scores = np.asarray(saliency, np.float64).ravel()
    labels = np.asarray(foreground, bool).ravel()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
