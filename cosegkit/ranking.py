"""From heat maps and proposals to one mask per instance (spec §7, steps 5–7).

For every peak i (heat map Oⁱ) and every proposal P (a binary mask), DeepCO3 scores

    R(P) = β ⟨Oⁱ ⊙ S, P⟩ + ⟨Oⁱ ⊙ S, P̂⟩ − γ ⟨1 − S, P⟩            (⟨A, B⟩ = Σ A ⊙ B)

- ``β ⟨Oⁱ⊙S, P⟩``   instance-aware: P should hold the salient part of the peak's heat;
- ``⟨Oⁱ⊙S, P̂⟩``     contour-preserving: P̂ is P's boundary band, heat sits on edges;
- ``−γ ⟨1−S, P⟩``   background-suppressing: P should not cover non-salient pixels.

Then each peak keeps its best proposal (:func:`select_per_peak`), duplicates are removed
with mask NMS (:func:`mask_nms`), and optionally weak instances of the whole collection
are dropped (:func:`class_filter`). :func:`select_instances` chains the per-image steps;
:class:`RankingOptions` holds every setting of them (``Config.ranking``).

Everything here is numpy and works at the proposals' working resolution ``(h, w)``:
heat maps ``(M, h, w)`` (one per peak), co-saliency ``S`` ``(h, w)`` in ``[0, 1]``.
A *proposals* object needs ``shape``, ``n``, ``region_sums(maps)`` (``(M, h, w)`` →
``(P, M)``), ``contour_sums(maps, width)`` and ``iou_matrix(a, b)`` — see
:mod:`cosegkit.proposals`.

Example (``props`` from :mod:`cosegkit.proposals`, ``O`` from :mod:`cosegkit.prm`)::

    >>> idx, score, peak = select_instances(props, O, S)          # doctest: +SKIP
    >>> idx, score, peak = select_instances(props, O, S, RankingOptions(beta=0.6))  # doctest: +SKIP
    >>> masks = props.masks(idx, out_shape=image.shape[:2])       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .choices import check_choices
from .masks import mask_nms

# γ = 1e-5 was set for ⟨1 − S, P⟩ counted in pixels on images of about this size
# (PASCAL VOC / COCO photos are ~500 × 375 at their original resolution, which is also
# `Config.proposal_max_side`). gamma_mode="area" rescales the term to this many pixels.
GAMMA_REFERENCE_AREA = 500 * 375

HeatmapNorm = Literal["sum", "max"]
GammaMode = Literal["pixels", "area"]
RankingSaliency = Literal["cosaliency", "geometric_mean"]
SaliencyNorm = Literal["none", "max"]
InstanceScore = Literal["ranking", "ranking_x_peak"]


@dataclass(frozen=True)
class RankingOptions:
    """Every setting of the last step, from peaks and heat maps to one mask per instance.

    None of them changes training, heat maps or proposals, so ``Result.rerank(**changes)`` tries new
    values in a fraction of a second. The defaults are the paper's (spec §7); ``lite`` changes five.
    """

    # ------------------------------------------------------------------ peaks
    peak_threshold: Literal["median"] | float = "median"  # use peaks of Z ≥ this ("median" of Z, or logit units)
    heatmap_power: float = 1.0  # heat maps are raised to this power before normalising (>1: less diffuse haze)
    heatmap_norm: HeatmapNorm = "sum"  # normalise each heat map Oⁱ to "sum" 1 (PRM code) or "max" 1
    # ------------------------------------------------------------------ R(P) = β⟨O⊙S, P⟩ + ⟨O⊙S, P̂⟩ − γ⟨1 − S, P⟩
    beta: float = 0.8  # β, weight of the instance-aware term
    gamma: float = 1e-5  # γ, weight of the background-suppressing term
    gamma_mode: GammaMode = "pixels"  # "pixels": γ·⟨1−S, P⟩ (paper) | "area": γ·A_ref·⟨1−S, P⟩/(h·w), A_ref 500·375
    contour_width: int = 5  # P̂ = dilate(P) − erode(P) with a contour_width² square
    use_cosaliency_in_ranking: bool = True  # False: the paper's "without co-saliency" ablation (S ≡ 1, no γ term)
    ranking_saliency: RankingSaliency = "cosaliency"  # the S of R: "cosaliency" (paper) | "geometric_mean": √(S·Ŝ)
    ranking_saliency_norm: SaliencyNorm = "none"  # "none" (paper): S as trained | "max": S / max S per image
    # ------------------------------------------------------------------ instances
    instance_score: InstanceScore = "ranking"  # "ranking" (paper): R | "ranking_x_peak": R × S̃ at the peak
    nms_iou: float = 0.4  # drop masks whose IoU with a better one is ≥ nms_iou
    class_filter: bool = False  # drop instances below the class_percentile of all scores (code); no gain measured
    class_percentile: float = 20.0

    def __post_init__(self):
        literals = dict(heatmap_norm=HeatmapNorm, gamma_mode=GammaMode, ranking_saliency=RankingSaliency)
        check_choices(
            "RankingOptions", self, {**literals, "ranking_saliency_norm": SaliencyNorm, "instance_score": InstanceScore}
        )
        threshold = self.peak_threshold
        if isinstance(threshold, bool) or not (threshold == "median" or isinstance(threshold, (int, float))):
            raise ValueError(f"peak_threshold must be 'median' or a number (logit units), got {threshold!r}.")
        for name, ok, rule in (
            ("heatmap_power", self.heatmap_power > 0, "> 0"),
            ("beta", self.beta >= 0, "≥ 0"),
            ("gamma", self.gamma >= 0, "≥ 0"),
            ("contour_width", self.contour_width >= 1, "≥ 1"),
            ("nms_iou", 0 <= self.nms_iou <= 1, "in [0, 1]"),
            ("class_percentile", 0 <= self.class_percentile <= 100, "in [0, 100]"),
        ):
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}.")

    def replace(self, **changes) -> RankingOptions:
        """A copy with some options changed; unknown names raise ``TypeError``."""
        unknown = set(changes) - RANKING_FIELDS
        if unknown:
            raise TypeError(f"RankingOptions has no option(s) {sorted(unknown)}; choose from {sorted(RANKING_FIELDS)}.")
        return dataclasses.replace(self, **changes)


RANKING_FIELDS = frozenset(f.name for f in dataclasses.fields(RankingOptions))


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
    """R = β·inside + contour − γ·background from :func:`ranking_terms`; ``shape``: the working (h, w). → ``(P, M)``."""
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


def peak_level(logits: np.ndarray, threshold: str | float = "median") -> float:
    """The level of Z a peak must reach: ``"median"`` → the median of ``logits`` ``(hz, wz)``; a number → itself."""
    return float(np.median(logits)) if threshold == "median" else float(threshold)


def peaks_in_use(logits: np.ndarray, peak_values: np.ndarray, threshold: str | float = "median") -> np.ndarray:
    """Indices of the peaks at least ``threshold`` (``"median"`` of Z, or a float in logit units).

    logits: ``(hz, wz)`` Z; peak_values: ``(M,)`` Z at each peak. → ``(M',)`` int64, in the peaks' order.
    """
    return np.flatnonzero(np.asarray(peak_values) >= peak_level(logits, threshold))


def ranking_saliency_map(saliency: np.ndarray, prior: np.ndarray | None, options: RankingOptions) -> np.ndarray:
    """The map R reads as S, ``(h, w)`` in [0, 1], chosen by ``options.ranking_saliency``:

    - ``"cosaliency"`` (paper): the trained co-saliency S;
    - ``"geometric_mean"``: √(S · Ŝ) with the saliency prior Ŝ ``(h, w)``. S comes from a coarse grid and is
      blurred at object edges; Ŝ is sharp but sees every salient thing, common or not. Their geometric
      mean is high only where both agree.
    """
    if options.ranking_saliency == "cosaliency":
        return saliency
    if prior is None:
        raise ValueError(
            "ranking_saliency='geometric_mean' needs the saliency prior, and none was given "
            "(results made by cosegment keep it; set ImageResult.prior_work to an (h, w) map in [0, 1])."
        )
    return np.sqrt(saliency * prior)


def sharpen_heatmaps(heatmaps: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Heat maps ``(M, h, w)`` raised to ``power``, negative values clipped first; ``power=1``: unchanged."""
    return heatmaps if power == 1 else np.maximum(heatmaps, 0) ** power


def terms_for(proposals, heatmaps: np.ndarray, saliency: np.ndarray, prior, options: RankingOptions) -> dict:
    """:func:`ranking_terms` with every option of ``options`` that shapes them: the power and the
    normalisation of the heat maps ``(M, h, w)``, the map read as S (``saliency`` or √(S · ``prior``)),
    its normalisation, the contour width and whether S is used at all."""
    return ranking_terms(
        proposals,
        sharpen_heatmaps(heatmaps, options.heatmap_power),
        ranking_saliency_map(saliency, prior, options),
        contour_width=options.contour_width,
        use_cosaliency=options.use_cosaliency_in_ranking,
        heatmap_norm=options.heatmap_norm,
        saliency_norm=options.ranking_saliency_norm,
    )


def cached_terms_for(cache: dict, proposals, heatmaps: np.ndarray, saliency: np.ndarray, prior, options) -> dict:
    """:func:`terms_for`, kept in ``cache`` (a dict owned by the caller, e.g. ``ImageResult.ranking_cache``).

    The terms depend on the heat maps, S, the prior, the proposals and six options, not on β, γ, NMS or the
    peak threshold, so trying new values of those only recombines cached matrices. An entry is used only
    while the inputs are the same arrays (``is``), so new heat maps or a new S make new terms.
    """
    key = (
        options.heatmap_power,
        options.heatmap_norm,
        options.ranking_saliency,
        options.ranking_saliency_norm,
        options.contour_width,
        options.use_cosaliency_in_ranking,
    )
    sources = (heatmaps, saliency, prior, proposals)
    entry = cache.get(key)
    if (
        entry is None
        or len(entry["sources"]) != len(sources)
        or any(a is not b for a, b in zip(entry["sources"], sources))
    ):
        entry = {"sources": sources, "terms": terms_for(proposals, heatmaps, saliency, prior, options)}
        cache[key] = entry
    return entry["terms"]


def proposal_scores(
    proposals, heatmaps: np.ndarray, saliency: np.ndarray, prior=None, options: RankingOptions | None = None
) -> np.ndarray:
    """R of every proposal for every heat map under ``options`` (power, S, norms, β, γ, …) → ``(P, M)``.

    heatmaps: ``(M, h, w)`` raw; saliency, prior: ``(h, w)`` in [0, 1] (the prior only for
    ``ranking_saliency="geometric_mean"``). What :func:`select_instances` ranks with.
    """
    options = options or RankingOptions()
    terms = terms_for(proposals, heatmaps, saliency, prior, options)
    return combine_terms(terms, proposals.shape, beta=options.beta, gamma=options.gamma, gamma_mode=options.gamma_mode)


def select_instances(
    proposals,
    heatmaps: np.ndarray,
    saliency: np.ndarray,
    options: RankingOptions | None = None,
    *,
    peak_values: np.ndarray | None = None,
    logits: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    cache: dict | None = None,
    **changes,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's instances: peaks in use → R → best proposal per peak → de-duplicate → mask NMS.

    proposals: ``P`` proposals at ``(h, w)``; heatmaps: ``(M, h, w)``, one raw heat map per peak;
    saliency: ``(h, w)`` co-saliency S in [0, 1]; options: :class:`RankingOptions` (None: the paper's),
    ``changes`` override single options (``select_instances(props, O, S, beta=0.6)``).
    peak_values: ``(M,)`` Z at each peak, needed for the peak threshold (with ``logits`` ``(hz, wz)`` for
    ``"median"``) and for ``instance_score="ranking_x_peak"``; None: every peak is used, the score is R.
    prior: ``(h, w)`` saliency prior Ŝ in [0, 1] (for ``ranking_saliency="geometric_mean"``).
    cache: a dict kept between calls to reuse the ranking terms (:func:`cached_terms_for`).

    An instance's score is R, or with ``"ranking_x_peak"`` R weighed by S̃ = sigmoid(Z) at its peak
    (:func:`weigh_scores`; not without co-saliency, paper Table 3): the weight changes how instances rank
    against each other, never which proposal a peak picks. When several peaks pick the same proposal it
    is kept once, with the higher score and that peak.

    Returns ``proposal_indices (K,)``, ``scores (K,)`` and ``peak_ids (K,)`` (index into the M peaks),
    best score first. Build the masks with ``proposals.masks(proposal_indices, out_shape=...)``.
    """
    options = (options or RankingOptions()).replace(**changes)
    empty = np.zeros(0, dtype=np.int64)
    if peak_values is None:
        if options.instance_score == "ranking_x_peak":
            raise ValueError("instance_score='ranking_x_peak' needs peak_values, Z at each peak.")
        use = np.arange(len(heatmaps))
    else:
        if logits is None and options.peak_threshold == "median":
            raise ValueError("peak_threshold='median' needs logits, the map Z the peaks come from.")
        use = peaks_in_use(logits, peak_values, options.peak_threshold)
    if len(use) == 0 or proposals.n == 0:
        return empty, np.zeros(0), empty
    if cache is None:
        terms = terms_for(proposals, heatmaps[use], saliency, prior, options)
    else:
        every = cached_terms_for(cache, proposals, heatmaps, saliency, prior, options)  # all M peaks
        terms = {
            "inside": every["inside"][:, use],
            "contour": every["contour"][:, use],
            "background": every["background"],
        }

    scores = combine_terms(
        terms, proposals.shape, beta=options.beta, gamma=options.gamma, gamma_mode=options.gamma_mode
    )
    best_index, best_score = select_per_peak(scores)
    if options.instance_score == "ranking_x_peak" and options.use_cosaliency_in_ranking:
        weights = 1.0 / (1.0 + np.exp(-np.asarray(peak_values)[use].astype(np.float64)))  # S̃ = sigmoid(Z) at the peak
        best_score = weigh_scores(best_score, weights)

    order = np.argsort(-best_score, kind="stable")  # best first, so np.unique keeps the best peak
    _, first = np.unique(best_index[order], return_index=True)
    peak_ids = order[np.sort(first)]
    candidates = best_index[peak_ids]

    kept = mask_nms(proposals.iou_matrix(candidates, candidates), best_score[peak_ids], options.nms_iou)
    return candidates[kept], best_score[peak_ids][kept], use[peak_ids[kept]]
