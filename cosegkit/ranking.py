"""From heat maps and proposals to one mask per instance (spec §7, steps 5–7).

For every peak i (heat map Oⁱ) and every proposal P (a binary mask), DeepCO3 scores

    R(P) = β ⟨Oⁱ ⊙ S, P⟩ + ⟨Oⁱ ⊙ S, P̂⟩ − γ ⟨1 − S, P⟩            (⟨A, B⟩ = Σ A ⊙ B)

- ``β ⟨Oⁱ⊙S, P⟩``   instance-aware: P should hold the salient part of the peak's heat;
- ``⟨Oⁱ⊙S, P̂⟩``     contour-preserving: P̂ is P's boundary band, heat sits on edges;
- ``−γ ⟨1−S, P⟩``   background-suppressing: P should not cover non-salient pixels.

Then each peak keeps its best proposal (:func:`select_per_peak`), duplicates are removed
with mask NMS (:func:`mask_nms`), and optionally weak instances of the whole collection
are dropped (:func:`class_filter`). :func:`select_instances` chains the per-image steps.

Everything here is numpy and works at the proposals' working resolution ``(h, w)``:
heat maps ``(M, h, w)`` (one per peak), co-saliency ``S`` ``(h, w)`` in ``[0, 1]``.
A *proposals* object needs ``shape``, ``n``, ``region_sums(maps)`` (``(M, h, w)`` →
``(P, M)``), ``contour_sums(maps, width)`` and ``iou_matrix(a, b)`` — see
:mod:`cosegkit.proposals`.

Example (``props`` from :mod:`cosegkit.proposals`, ``O`` from :mod:`cosegkit.prm`)::

    >>> idx, score, peak = select_instances(props, O, S)          # doctest: +SKIP
    >>> masks = props.masks(idx, out_shape=image.shape[:2])       # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from .masks import mask_nms

# γ = 1e-5 was set for ⟨1 − S, P⟩ counted in pixels on images of about this size
# (PASCAL VOC / COCO photos are ~500 × 375 at their original resolution, which is also
# `Config.proposal_max_side`). gamma_mode="area" rescales the term to this many pixels.
GAMMA_REFERENCE_AREA = 500 * 375


def normalize_heatmaps(heatmaps: np.ndarray, mode: str = "sum") -> np.ndarray:
    """Scale each heat map to sum 1 (``"sum"``) or to maximum 1 (``"max"``). ``(M, h, w)`` → ``(M, h, w)``.

    ``"sum"`` is what PRM's released code does and the default: ⟨Oⁱ, P⟩ becomes the
    fraction of the peak's heat inside P, a number in [0, 1] that does not depend on the
    resolution. With ``"max"`` the heat terms count pixels (hundreds) and γ⟨1 − S, P⟩
    becomes negligible, so the biggest proposal tends to win (spec §7.5).
    ``"none"`` returns the maps unchanged (as float64).

    Negative values (e.g. ringing from bicubic resizing) are clipped to 0 first; a map that
    is all zero stays all zero. Returns float64.
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"heatmaps must be (M, h, w), one map per peak; got shape {maps.shape}.")
    if mode == "none":
        return maps.copy()
    maps = np.maximum(maps, 0.0)
    if mode == "sum":
        total = maps.sum(axis=(1, 2), keepdims=True)
    elif mode == "max":
        total = maps.max(axis=(1, 2), keepdims=True, initial=0.0)
    else:
        raise ValueError(f"Unknown heat map normalisation {mode!r}; use 'sum', 'max' or 'none'.")
    return np.divide(maps, total, out=np.zeros_like(maps), where=total > 0)


def normalize_saliency(saliency: np.ndarray, mode: str = "none") -> np.ndarray:
    """The co-saliency map S ``(h, w)`` as the ranking reads it → ``(h, w)`` float64 in [0, 1].

    ``"none"`` (paper): S as it is. ``"max"``: S divided by its maximum over the image, so the
    most salient pixel is 1. The ranking's background term γ⟨1 − S, P⟩ assumes S ≈ 1 on objects;
    a network trained to imitate a squared prior (mean ≈ 0.1) peaks far lower (≈ 0.3), and
    then ⟨1 − S, P⟩ is nearly the area of P — a plain size penalty that picks a torso for a
    person. Rescaling keeps S's ranking of pixels and restores the term's meaning.
    An all-zero map stays zero.
    """
    S = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, 1.0)
    if mode == "none":
        return S
    if mode == "max":
        top = S.max(initial=0.0)
        return S / top if top > 0 else S
    raise ValueError(f"Unknown saliency normalisation {mode!r}; use 'none' or 'max'.")


def ranking_terms(
    proposals,
    heatmaps: np.ndarray,
    saliency: np.ndarray,
    contour_width: int = 5,
    use_cosaliency: bool = True,
    heatmap_norm: str = "sum",
    saliency_norm: str = "none",
) -> dict:
    """The three sums R is made of, before β and γ weigh them. → dict of arrays:

    ``inside (P, M)`` = ⟨Oⁱ⊙S, P⟩, ``contour (P, M)`` = ⟨Oⁱ⊙S, P̂⟩ and ``background (P,)`` =
    ⟨1 − S, P⟩ in pixels of the working resolution (all zero when ``use_cosaliency`` is False, where
    S ≡ 1). Shapes and options as in :func:`ranking_scores`; :func:`combine_terms` finishes the job.
    Keeping them lets ``Result.rerank`` try new β, γ, NMS or peak settings without these products.
    """
    h, w = proposals.shape
    maps = normalize_heatmaps(heatmaps, heatmap_norm)
    if maps.shape[1:] != (h, w):
        raise ValueError(
            f"heatmaps are {maps.shape[1:]} but proposals work at {(h, w)}; "
            "resize the heat maps to the proposals' working resolution first."
        )
    if not use_cosaliency:
        return {
            "inside": proposals.region_sums(maps),
            "contour": proposals.contour_sums(maps, width=contour_width),
            "background": np.zeros(proposals.n),
        }

    S = np.asarray(saliency, dtype=np.float64)
    if S.shape != (h, w):
        raise ValueError(
            f"saliency is {S.shape} but proposals work at {(h, w)}; resize S to the working resolution first."
        )
    if S.min() < -1e-6 or S.max() > 1 + 1e-6:
        raise ValueError(
            f"saliency must be a probability map in [0, 1], got values in [{S.min():.3g}, {S.max():.3g}]; "
            "apply a sigmoid to logits first."
        )
    S = normalize_saliency(S, saliency_norm)

    heat = maps * S  # (M, h, w): Oⁱ ⊙ S
    M = heat.shape[0]
    inside = proposals.region_sums(np.concatenate([heat, (1.0 - S)[None]], axis=0))  # (P, M + 1)
    contour = proposals.contour_sums(heat, width=contour_width)  # (P, M)
    return {"inside": inside[:, :M], "contour": contour, "background": inside[:, M]}


def combine_terms(
    terms: dict,
    shape: tuple[int, int],
    beta: float = 0.8,
    gamma: float = 1e-5,
    gamma_mode: str = "pixels",
    gamma_reference_area: float = GAMMA_REFERENCE_AREA,
) -> np.ndarray:
    """R = β·inside + contour − γ·background from :func:`ranking_terms`. ``shape`` = the working (h, w). → ``(P, M)``."""
    h, w = shape
    if gamma_mode == "pixels":
        penalty = gamma * terms["background"]
    elif gamma_mode == "area":
        penalty = gamma * gamma_reference_area * terms["background"] / (h * w)
    else:
        raise ValueError(f"Unknown gamma_mode {gamma_mode!r}; use 'pixels' or 'area'.")
    return beta * terms["inside"] + terms["contour"] - penalty[:, None]


def ranking_scores(
    proposals,
    heatmaps: np.ndarray,
    saliency: np.ndarray,
    beta: float = 0.8,
    gamma: float = 1e-5,
    gamma_mode: str = "pixels",
    contour_width: int = 5,
    use_cosaliency: bool = True,
    heatmap_norm: str = "sum",
    gamma_reference_area: float = GAMMA_REFERENCE_AREA,
    saliency_norm: str = "none",
) -> np.ndarray:
    """Score every proposal for every peak at once. → ``(P, M)``, entry ``[p, i]`` = R(P_p) for peak i.

    proposals: working resolution ``(h, w)``, ``P`` proposals; heatmaps: ``(M, h, w)`` raw
    heat maps Oⁱ, *normalised here* with ``heatmap_norm`` (normalising at the working
    resolution keeps "sum 1" exact; pass ``"none"`` if yours are already normalised);
    saliency: ``(h, w)`` co-saliency S in [0, 1], rescaled with ``saliency_norm`` (see
    :func:`normalize_saliency`).

    Two sparse products do all the work: ``region_sums`` of the stacked maps
    ``[O¹⊙S, …, Oᴹ⊙S, 1−S]`` and ``contour_sums`` of ``[O¹⊙S, …, Oᴹ⊙S]``
    (:func:`ranking_terms`), then :func:`combine_terms` weighs them.

    The background term, for ``gamma_mode``:

    - ``"pixels"`` (paper): ``γ ⟨1 − S, P⟩``, P counted in pixels. The heat terms are
      resolution-free (sum-normalised O), this one is not: halving the working side
      divides it by 4, so γ = 1e-5 only means what it meant at ~500 × 375.
    - ``"area"``: ``γ · A_ref · ⟨1 − S, P⟩ / (h·w)`` with ``A_ref = gamma_reference_area``
      (default 500·375 = 187 500 pixels). ``⟨1 − S, P⟩ / (h·w)`` is the fraction of the image
      that is background inside P, which does not change with resolution; multiplying by
      ``A_ref`` keeps γ's meaning ("per pixel of a 500 × 375 image"), so the same γ works in
      both modes and both agree exactly when ``h·w = A_ref``.

    ``use_cosaliency=False`` is the paper's "without co-saliency" ablation (Table 3):
    S ≡ 1 in the two heat terms and no background term.
    """
    terms = ranking_terms(
        proposals,
        heatmaps,
        saliency,
        contour_width=contour_width,
        use_cosaliency=use_cosaliency,
        heatmap_norm=heatmap_norm,
        saliency_norm=saliency_norm,
    )
    return combine_terms(
        terms, proposals.shape, beta=beta, gamma=gamma, gamma_mode=gamma_mode, gamma_reference_area=gamma_reference_area
    )


def select_per_peak(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each peak keeps its best proposal. ``(P, M)`` → ``best_index (M,)``, ``best_score (M,)``.

    Ties go to the lower proposal index.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (P, M) = (proposals, peaks); got shape {scores.shape}.")
    if scores.shape[0] == 0:
        raise ValueError("There are no proposals to choose from; check the proposal generator's area limits.")
    best_index = scores.argmax(axis=0)
    return best_index, scores[best_index, np.arange(scores.shape[1])]


def class_filter(scores_per_image: list[np.ndarray], percentile: float = 20.0) -> list[np.ndarray]:
    """Drop the collection's weakest instances. → one boolean keep array ``(K_n,)`` per image.

    scores_per_image: ``[(K_1,), …, (K_N,)]`` instance scores of every image of the
    collection. An instance is kept if its score is ≥ the ``percentile``-th percentile
    (numpy's linear interpolation) of all scores pooled, and the best instance of every
    image that has any is always kept, so no image loses all its instances.
    """
    scores = [np.asarray(s, dtype=np.float64).reshape(-1) for s in scores_per_image]
    pooled = np.concatenate(scores) if scores else np.zeros(0)
    if pooled.size == 0:
        return [np.zeros(0, dtype=bool) for _ in scores]
    threshold = np.percentile(pooled, percentile)
    keep = []
    for s in scores:
        k = s >= threshold
        if s.size:
            k[np.argmax(s)] = True
        keep.append(k)
    return keep


MIN_PEAK_WEIGHT = 1e-12  # weights below count as this (weigh_scores divides by them)


def weigh_scores(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Instance scores from R and non-negative peak weights w (e.g. S̃ at the peak), both ``(K,)`` → ``(K,)``:
    ``R · w`` where R ≥ 0 and ``R / w`` where R < 0.

    A larger weight always moves a score up, whatever R's sign, so with the same R a weaker peak never
    ranks above a stronger one. ``R · w`` alone would do the opposite for R < 0 (e.g. an all-zero heat
    map, R = −γ⟨1 − S, P⟩: the lower the weight, the closer to 0). For a fixed weight the score still
    grows with R and is continuous at R = 0. Weights below ``MIN_PEAK_WEIGHT`` count as that.

    >>> weigh_scores(np.array([0.2, 0.2, -0.5, -0.5]), np.array([0.5, 0.25, 0.5, 0.25])).tolist()
    [0.1, 0.05, -1.0, -2.0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    weights = np.maximum(np.asarray(weights, dtype=np.float64), MIN_PEAK_WEIGHT)
    return np.where(scores >= 0, scores * weights, scores / weights)


def select_instances(
    proposals,
    heatmaps: np.ndarray | None,
    saliency: np.ndarray,
    beta: float = 0.8,
    gamma: float = 1e-5,
    gamma_mode: str = "pixels",
    contour_width: int = 5,
    use_cosaliency: bool = True,
    heatmap_norm: str = "sum",
    saliency_norm: str = "none",
    nms_iou: float = 0.4,
    peak_weights: np.ndarray | None = None,
    terms: dict | None = None,
    gamma_reference_area: float = GAMMA_REFERENCE_AREA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's instances: rank → best proposal per peak → de-duplicate → mask NMS.

    proposals: ``P`` proposals at ``(h, w)``; heatmaps: ``(M, h, w)``; saliency: ``(h, w)``;
    peak_weights: ``(M,)`` non-negative weights of each peak's instance (e.g. the co-saliency S̃ at
    the peak; None: the score is R, as in the paper), applied by :func:`weigh_scores` (R·w for R ≥ 0,
    R / w for R < 0). A weight does not change which proposal a peak picks, only how its instance
    ranks against the others.
    terms: :func:`ranking_terms` of these heat maps, if already computed (then ``heatmaps`` may be
    None, and the options that shaped the terms are ignored).
    Returns ``proposal_indices (K,)``, ``scores (K,)`` and ``peak_ids (K,)`` (the peak
    each instance came from), best score first. When several peaks pick the same proposal
    it is kept once, with the higher score and that peak. Build the masks with
    ``proposals.masks(proposal_indices, out_shape=...)``. See :func:`ranking_scores` for
    the options; :func:`ranking_options` reads them from a ``Config``.
    """
    empty = np.zeros(0, dtype=np.int64)
    n_peaks = len(heatmaps) if terms is None else terms["inside"].shape[1]
    if n_peaks == 0 or proposals.n == 0:
        return empty, np.zeros(0), empty
    if terms is None:
        terms = ranking_terms(
            proposals,
            heatmaps,
            saliency,
            contour_width=contour_width,
            use_cosaliency=use_cosaliency,
            heatmap_norm=heatmap_norm,
            saliency_norm=saliency_norm,
        )
    scores = combine_terms(
        terms, proposals.shape, beta=beta, gamma=gamma, gamma_mode=gamma_mode, gamma_reference_area=gamma_reference_area
    )
    best_index, best_score = select_per_peak(scores)
    if peak_weights is not None:
        weights = np.asarray(peak_weights, dtype=np.float64).reshape(-1)
        if weights.shape != best_score.shape or (weights < 0).any():
            raise ValueError(f"peak_weights must be {best_score.shape} and non-negative; got {weights.shape}.")
        best_score = weigh_scores(best_score, weights)

    order = np.argsort(-best_score, kind="stable")  # best first, so np.unique keeps the best peak
    _, first = np.unique(best_index[order], return_index=True)
    peak_ids = order[np.sort(first)]
    candidates = best_index[peak_ids]

    kept = mask_nms(proposals.iou_matrix(candidates, candidates), best_score[peak_ids], nms_iou)
    return candidates[kept], best_score[peak_ids][kept], peak_ids[kept]


def ranking_options(config) -> dict:
    """The keyword arguments of :func:`select_instances` taken from a :class:`cosegkit.Config`."""
    return dict(
        beta=config.beta,
        gamma=config.gamma,
        gamma_mode=config.gamma_mode,
        contour_width=config.contour_width,
        use_cosaliency=config.use_cosaliency_in_ranking,
        heatmap_norm=config.heatmap_norm,
        saliency_norm=config.ranking_saliency_norm,
        nms_iou=config.nms_iou,
    )
