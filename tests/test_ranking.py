import numpy as np
import pytest
from scipy import ndimage

from cosegkit.masks import mask_iou, mask_nms
from cosegkit.ranking import (
    GAMMA_REFERENCE_AREA,
    RankingOptions,
    class_filter,
    normalize_heatmaps,
    ranking_scores,
    select_instances,
    select_per_peak,
)


class DenseProposals:
    """Stand-in for cosegkit.proposals.Proposals, built from explicit boolean masks (P, h, w)."""

    def __init__(self, masks):
        self._masks = np.asarray(masks, dtype=bool)
        self.shape = self._masks.shape[1:]
        self.n = len(self._masks)
        self.areas = self._masks.sum(axis=(1, 2))

    def contours(self, width):
        square = np.ones((width, width), dtype=bool)
        return np.stack([ndimage.binary_dilation(m, square) ^ ndimage.binary_erosion(m, square) for m in self._masks])

    def region_sums(self, maps):
        return np.einsum("phw,mhw->pm", self._masks.astype(float), maps)

    def contour_sums(self, maps, width=5):
        return np.einsum("phw,mhw->pm", self.contours(width).astype(float), maps)

    def masks(self, indices, out_shape=None):
        return self._masks[np.asarray(indices)]

    def iou_matrix(self, indices_a, indices_b):
        return mask_iou(self._masks[np.asarray(indices_a)], self._masks[np.asarray(indices_b)])


def box(h, w, rows, cols):
    m = np.zeros((h, w), dtype=bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


# ---------------------------------------------------------------- a 4 × 6 scene
#
# Heat map 1 (raw): 3 at (1, 1), 1 at (2, 4)  → sum-normalised 0.75 and 0.25
# Heat map 2 (raw): 1 at (2, 4)               → 1
# S = 1 on columns 0–2, 0.5 on columns 3–5    → O¹⊙S: 0.75 at (1,1), 0.125 at (2,4); O²⊙S: 0.5 at (2,4)
#
# Proposals and their 3 × 3 contour bands (dilation XOR erosion, outside = not in P):
#   P0 = pixel (1,1)               band rows 0–2 × cols 0–2 (erosion empty)      ⟨1−S,P⟩ = 0
#   P1 = columns 0–2 (12 px)       band = cols 0–3 minus {(1,1), (2,1)}          ⟨1−S,P⟩ = 0
#   P2 = whole image (24 px)       band = the outer ring; (1,1), (2,4) inside    ⟨1−S,P⟩ = 12·0.5 = 6
#   P3 = rows 1–2 × cols 4–5       band rows 0–3 × cols 3–5 (erosion empty)      ⟨1−S,P⟩ = 4·0.5 = 2
H, W = 4, 6
SCENE_MASKS = [
    box(H, W, (1, 2), (1, 2)),
    box(H, W, (0, 4), (0, 3)),
    box(H, W, (0, 4), (0, 6)),
    box(H, W, (1, 3), (4, 6)),
]


def scene():
    heat = np.zeros((2, H, W))
    heat[0, 1, 1], heat[0, 2, 4] = 3.0, 1.0
    heat[1, 2, 4] = 1.0
    S = np.ones((H, W))
    S[:, 3:] = 0.5
    return DenseProposals(SCENE_MASKS), heat, S


def test_stand_in_contours_are_the_ones_worked_out_by_hand():
    props, _, _ = scene()
    band = props.contours(3)
    np.testing.assert_array_equal(band[0], box(H, W, (0, 3), (0, 3)))
    expected1 = box(H, W, (0, 4), (0, 4))
    expected1[1:3, 1] = False
    np.testing.assert_array_equal(band[1], expected1)
    np.testing.assert_array_equal(band[2], ~box(H, W, (1, 3), (1, 5)))
    np.testing.assert_array_equal(band[3], box(H, W, (0, 4), (3, 6)))


def test_ranking_scores_by_hand():
    props, heat, S = scene()
    R = ranking_scores(props, heat, S, beta=0.8, gamma=0.01, contour_width=3)
    # peak 1:  β·region + contour − γ·bg          peak 2
    # P0: 0.8·0.75 + 0.75 − 0       = 1.35       0
    # P1: 0.8·0.75 + 0    − 0       = 0.6        0
    # P2: 0.8·0.875 + 0   − 0.01·6  = 0.64       0.8·0.5 + 0 − 0.06 = 0.34
    # P3: 0.8·0.125 + 0.125 − 0.01·2 = 0.205     0.8·0.5 + 0.5 − 0.02 = 0.88
    expected = np.array([[1.35, 0.0], [0.6, 0.0], [0.64, 0.34], [0.205, 0.88]])
    np.testing.assert_allclose(R, expected, atol=1e-12)
    best, best_score = select_per_peak(R)
    np.testing.assert_array_equal(best, [0, 3])
    np.testing.assert_allclose(best_score, [1.35, 0.88])


def test_default_contour_width_is_five():
    props, heat, S = scene()
    # with a 5 × 5 square P1's erosion is empty and its band is columns 0–4: it now holds
    # (1, 1) and (2, 4) → contour 0.75 + 0.125 for peak 1 and 0.5 for peak 2 (3 × 3 gave 0 and 0).
    R = ranking_scores(props, heat, S, gamma=0.0)
    np.testing.assert_allclose(R[1], [0.8 * 0.75 + 0.875, 0.5], atol=1e-12)


def test_max_normalisation_by_hand():
    props, heat, S = scene()
    R = ranking_scores(props, heat, S, gamma=0.01, contour_width=3, heatmap_norm="max")
    # O¹ max-normalised: 1 at (1,1), 1/3 at (2,4) → O¹⊙S: 1 and 1/6; O² unchanged.
    expected = np.array([[1.8, 0.0], [0.8, 0.0], [0.8 * 7 / 6 - 0.06, 0.34], [1.8 / 6 - 0.02, 0.88]])
    np.testing.assert_allclose(R, expected, atol=1e-12)


def test_without_cosaliency_uses_the_heat_maps_alone():
    props, heat, S = scene()
    R = ranking_scores(props, heat, S, gamma=0.01, contour_width=3, use_cosaliency=False)
    # S ≡ 1, no γ term: O¹ = 0.75 at (1,1), 0.25 at (2,4); O² = 1 at (2,4)
    # P0: 0.6 + 0.75 = 1.35 | 0        P1: 0.6 | 0
    # P2: 0.8·1 = 0.8 | 0.8             P3: 0.8·0.25 + 0.25 = 0.45 | 0.8 + 1 = 1.8
    expected = np.array([[1.35, 0.0], [0.6, 0.0], [0.8, 0.8], [0.45, 1.8]])
    np.testing.assert_allclose(R, expected, atol=1e-12)
    # a different S changes nothing in the ablation
    np.testing.assert_allclose(
        ranking_scores(props, heat, S * 0.1, gamma=0.01, contour_width=3, use_cosaliency=False), R
    )


def test_gamma_area_mode_rescales_to_the_reference_area():
    props, heat, S = scene()
    pixels = ranking_scores(props, heat, S, gamma=0.02, contour_width=3)
    # h·w = 24, so A_ref = 48 doubles the pixel-mode penalty: γ·48·⟨1−S,P⟩/24 = 2γ⟨1−S,P⟩
    area = ranking_scores(props, heat, S, gamma=0.01, gamma_mode="area", contour_width=3, gamma_reference_area=48)
    np.testing.assert_allclose(area, pixels, atol=1e-12)
    np.testing.assert_allclose(area[2, 1], 0.4 - 0.12, atol=1e-12)
    assert GAMMA_REFERENCE_AREA == 500 * 375


def test_gamma_area_mode_does_not_depend_on_resolution():
    props, heat, S = scene()
    no_heat = np.zeros_like(heat)  # leaves only the background term
    up = np.ones((2, 2), dtype=bool)
    big_props = DenseProposals([np.kron(m, up) for m in SCENE_MASKS])
    big_S, big_heat = np.kron(S, up), np.zeros((2, 2 * H, 2 * W))

    small = ranking_scores(props, no_heat, S, gamma=0.01, gamma_mode="area")
    big = ranking_scores(big_props, big_heat, big_S, gamma=0.01, gamma_mode="area")
    np.testing.assert_allclose(big, small, atol=1e-12)
    # P2 holds 12 pixels at 1 − S = 0.5 out of 24: −γ·A_ref·6/24
    np.testing.assert_allclose(small[2], -0.01 * GAMMA_REFERENCE_AREA * 6 / 24)

    small_px = ranking_scores(props, no_heat, S, gamma=0.01)
    big_px = ranking_scores(big_props, big_heat, big_S, gamma=0.01)
    np.testing.assert_allclose(big_px, 4 * small_px, atol=1e-12)  # pixel mode grows with the area


def test_ranking_rejects_bad_inputs():
    props, heat, S = scene()
    with pytest.raises(ValueError, match="working resolution"):
        ranking_scores(props, heat[:, :3], S)
    with pytest.raises(ValueError, match="sigmoid"):
        ranking_scores(props, heat, S * 4 - 2)
    with pytest.raises(ValueError, match="gamma_mode"):
        ranking_scores(props, heat, S, gamma_mode="meters")


def test_normalize_heatmaps_sum_and_max():
    maps = np.zeros((3, 2, 2))
    maps[0] = [[1, 3], [0, 0]]
    maps[1] = [[2, 0], [-1, 2]]  # a negative value is clipped to 0
    out = normalize_heatmaps(maps, "sum")
    np.testing.assert_allclose(out[0], [[0.25, 0.75], [0, 0]])
    np.testing.assert_allclose(out[1], [[0.5, 0], [0, 0.5]])
    np.testing.assert_array_equal(out[2], 0)  # all-zero stays zero, no NaN
    out = normalize_heatmaps(maps, "max")
    np.testing.assert_allclose(out[0], [[1 / 3, 1], [0, 0]])
    np.testing.assert_allclose(out[1], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(out[2], 0)
    with pytest.raises(ValueError, match="'sum', 'max'"):
        normalize_heatmaps(maps, "l2")


def test_heat_maps_are_normalised_inside_ranking():
    props, heat, S = scene()
    np.testing.assert_allclose(
        ranking_scores(props, 7.0 * heat, S, contour_width=3), ranking_scores(props, heat, S, contour_width=3)
    )
    pre = normalize_heatmaps(heat, "sum")
    np.testing.assert_allclose(
        ranking_scores(props, pre, S, contour_width=3, heatmap_norm="none"),
        ranking_scores(props, heat, S, contour_width=3),
    )


# ---------------------------------------------------------------- NMS


def nms_masks():
    m = np.zeros((3, 2, 10), dtype=bool)
    m[0, 0, :] = True  # A: row 0, 10 px
    m[1, 0, :4] = True  # B: 4 px inside A → IoU(A, B) = 4/10 = 0.4 exactly
    m[2, 0, 6:] = True  # C: 4 px of A's row (cols 6–9) + 6 px of row 1 → IoU(A, C) = 4/(10+10−4) = 0.25
    m[2, 1, :6] = True
    return m  # B and C do not touch: IoU(B, C) = 0


def test_mask_iou_by_hand():
    iou = mask_iou(nms_masks(), nms_masks())
    expected = np.array([[1, 0.4, 0.25], [0.4, 1, 0], [0.25, 0, 1]])
    np.testing.assert_allclose(iou, expected)
    assert mask_iou(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool))[0, 0] == 0  # empty ∪ empty


def test_mask_nms_drops_iou_exactly_at_threshold():
    masks = nms_masks()
    np.testing.assert_array_equal(mask_nms(masks, [0.9, 0.8, 0.7], 0.4), [0, 2])  # B: IoU 0.4 ≥ 0.4 → dropped
    np.testing.assert_array_equal(mask_nms(masks, [0.9, 0.8, 0.7], 0.41), [0, 1, 2])  # below → kept
    np.testing.assert_array_equal(mask_nms(masks, [0.9, 0.8, 0.7], 0.25), [0])  # C at 0.25 dropped too
    # B first: B is kept, A (0.4 with B) dropped, C (0 with B) kept — A never suppresses C
    np.testing.assert_array_equal(mask_nms(masks, [0.8, 0.9, 0.7], 0.4), [1, 2])


def test_mask_nms_accepts_an_iou_matrix():
    masks = nms_masks()
    iou = mask_iou(masks, masks)
    np.testing.assert_array_equal(mask_nms(iou, [0.1, 0.5, 0.3], 0.4), [1, 2])
    assert mask_nms(np.zeros((0, 0)), np.zeros(0)).size == 0
    with pytest.raises(ValueError, match="scores"):
        mask_nms(iou, [0.1, 0.2])


# ---------------------------------------------------------------- class filter


def test_class_filter_keeps_the_best_of_every_image():
    scores = [np.array([0.9, 0.5]), np.array([0.1, 0.05]), np.array([0.7]), np.array([])]
    # pooled: 0.05 0.1 0.5 0.7 0.9 → 50th percentile = 0.5; 0.5 itself is kept (≥)
    keep = class_filter(scores, percentile=50)
    np.testing.assert_array_equal(keep[0], [True, True])
    np.testing.assert_array_equal(keep[1], [True, False])  # every score below: the best one survives
    np.testing.assert_array_equal(keep[2], [True])
    assert keep[3].shape == (0,)
    # default 20th percentile: 0.05 + 0.8·(0.1 − 0.05) = 0.09 → only 0.05 goes
    keep = class_filter(scores)
    np.testing.assert_array_equal(np.concatenate(keep), [True, True, True, False, True])
    assert class_filter([np.array([]), np.array([])])[0].shape == (0,)


# ---------------------------------------------------------------- end to end


def test_select_instances_end_to_end():
    props, heat, S = scene()
    # a third peak whose heat sits on (1, 1) as well picks P0 again: kept once, with the better peak
    heat3 = np.concatenate([heat, np.zeros((1, H, W))])
    heat3[2, 1, 1], heat3[2, 0, 5] = 1.0, 1.0  # → 0.5 / 0.5: R(P0) = 0.8·0.5 + 0.5 = 0.9 < 1.35
    idx, score, peak = select_instances(props, heat3, S, gamma=0.01, contour_width=3)
    np.testing.assert_array_equal(idx, [0, 3])
    np.testing.assert_allclose(score, [1.35, 0.88])
    np.testing.assert_array_equal(peak, [0, 1])


def test_select_instances_applies_nms():
    # Ablation (S ≡ 1), peak 1 with flat heat 1/24 everywhere: region/contour pixel counts
    #   P0 (1/9): 0.8/24 + 9/24   P1 (12/14): 9.6/24 + 14/24   P2 (24/16): 0.8 + 16/24 = 35.2/24 ← best
    #   P3 (4/12): 3.2/24 + 12/24
    # Peak 2 (heat 1 at (2, 4)) picks P3 with 0.8 + 1 = 1.8, so P3 comes first.
    # IoU(P2, P3) = 4/24 < 0.4 keeps both; a threshold of 1/6 drops the weaker P2.
    props, heat, S = scene()
    heat2 = heat.copy()
    heat2[0] = 1.0
    idx, score, peak = select_instances(props, heat2, S, contour_width=3, use_cosaliency_in_ranking=False)
    np.testing.assert_array_equal(idx, [3, 2])
    np.testing.assert_allclose(score, [1.8, 35.2 / 24])
    np.testing.assert_array_equal(peak, [1, 0])
    idx, _, _ = select_instances(props, heat2, S, contour_width=3, use_cosaliency_in_ranking=False, nms_iou=1 / 6)
    np.testing.assert_array_equal(idx, [3])


def test_select_instances_without_peaks():
    props, heat, S = scene()
    idx, score, peak = select_instances(props, heat[:0], S)
    assert idx.shape == score.shape == peak.shape == (0,)


def test_select_instances_takes_the_config_options_and_flat_changes():
    from cosegkit.config import preset

    opts = preset("paper", gamma=0.01, contour_width=3, use_cosaliency_in_ranking=False).ranking
    assert opts.gamma == 0.01 and opts.use_cosaliency_in_ranking is False and opts.nms_iou == 0.4
    props, heat, S = scene()
    by_options = select_instances(props, heat, S, opts)
    by_name = select_instances(props, heat, S, gamma=0.01, contour_width=3, use_cosaliency_in_ranking=False)
    for a, b in zip(by_options, by_name):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="no option"):
        select_instances(props, heat, S, opts, betta=1.0)


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


def test_saliency_max_normalisation_by_hand():
    """S / max S: the scene's S scaled by 0.25 ranks exactly like the scene's S (whose max is 1)."""
    from cosegkit.ranking import normalize_saliency

    props, heat, S = scene()
    np.testing.assert_allclose(normalize_saliency(0.25 * S, "max"), S)
    np.testing.assert_array_equal(normalize_saliency(np.zeros((2, 3)), "max"), np.zeros((2, 3)))  # no division by 0
    R = ranking_scores(props, heat, 0.25 * S, beta=0.8, gamma=0.01, contour_width=3, saliency_norm="max")
    expected = np.array([[1.35, 0.0], [0.6, 0.0], [0.64, 0.34], [0.205, 0.88]])  # test_ranking_scores_by_hand
    np.testing.assert_allclose(R, expected, atol=1e-12)
    # without the normalisation a dim S changes the numbers: P0 for peak 1 = 0.8·0.1875 + 0.1875 − 0.01·0.75
    R_raw = ranking_scores(props, heat, 0.25 * S, beta=0.8, gamma=0.01, contour_width=3)
    assert R_raw[0, 0] == pytest.approx(0.8 * 0.1875 + 0.1875 - 0.0075)
    with pytest.raises(ValueError, match="saliency normalisation"):
        normalize_saliency(S, "mean")


def test_peak_weights_reorder_instances_without_changing_the_choice():
    props, heat, S = scene()
    idx, scores, peaks = select_instances(props, heat, S, gamma=0.01, contour_width=3, nms_iou=0.4)
    np.testing.assert_array_equal(idx, [0, 3])  # R = 1.35 (peak 0, P0) before 0.88 (peak 1, P3)
    weighed = RankingOptions(gamma=0.01, contour_width=3, instance_score="ranking_x_peak", peak_threshold=-np.inf)
    idx_w, scores_w, peaks_w = select_instances(props, heat, S, weighed, peak_values=logit([0.5, 0.999]))
    np.testing.assert_array_equal(idx_w, [3, 0])  # 0.88 · 0.999 now beats 1.35 · 0.5 = 0.675
    np.testing.assert_allclose(scores_w, [0.88 * 0.999, 0.675])
    np.testing.assert_array_equal(peaks_w, [1, 0])
    with pytest.raises(ValueError, match="needs peak_values"):
        select_instances(props, heat, S, weighed)
    with pytest.raises(ValueError, match="needs logits"):
        select_instances(props, heat, S, peak_values=np.zeros(2))  # "median" of what?


def test_select_instances_and_ranking_scores_agree_on_the_reference_area():
    """One code path: select_instances weighs γ with the same reference area as ranking_scores."""
    props, heat, S = scene()
    options = dict(gamma=0.05 * 48 / GAMMA_REFERENCE_AREA, gamma_mode="area", contour_width=3)
    R = ranking_scores(props, heat, S, **options)
    # h·w = 24: the penalty is 0.1·⟨1−S,P⟩. Peak 1: P0 1.35, P2 0.7 − 0.6 = 0.1; peak 2: P3 0.9 − 0.2 = 0.7
    np.testing.assert_allclose(R[:, 0], [1.35, 0.6, 0.1, 0.225 - 0.2], atol=1e-12)
    idx, score, peak = select_instances(props, heat, S, **options)
    np.testing.assert_array_equal(idx, [0, 3])
    np.testing.assert_allclose(score, [R[0, 0], R[3, 1]], atol=1e-12)
    np.testing.assert_allclose(score, [1.35, 0.7], atol=1e-12)


def test_weigh_scores_by_hand():
    """R · w for R ≥ 0, R / w for R < 0: a larger weight always moves a score up."""
    from cosegkit.ranking import weigh_scores

    R = np.array([-0.5, -0.5, 0.2, 0.2, 0.0])
    w = np.array([0.9, 0.3, 0.9, 0.3, 0.5])
    np.testing.assert_allclose(weigh_scores(R, w), [-0.5 / 0.9, -0.5 / 0.3, 0.18, 0.06, 0.0])
    assert np.isfinite(weigh_scores(np.array([-1.0]), np.array([0.0]))).all()  # no division by zero


def test_a_weaker_peak_never_ranks_above_a_stronger_one_with_negative_r():
    """Two peaks whose best proposals have the same R < 0 (γ outweighs the heat): the stronger peak ranks first.

    S = 0.5 everywhere, γ = 4; peak a's heat on pixel (1, 1), peak b's on (2, 4); proposals: those two pixels and
    the whole image. Each peak picks its own pixel: R = 0.8·0.5 + 0.5 − 4·0.5 = −1.1 (the other pixel −2, the whole
    image 0.4 − 4·12 = −47.6). Weights 0.9 and 0.3: scores −1.1 / 0.9 and −1.1 / 0.3, so a first (R × w would give
    −0.99 and −0.33 and put the weaker b first)."""
    masks = [box(H, W, (1, 2), (1, 2)), box(H, W, (2, 3), (4, 5)), box(H, W, (0, 4), (0, 6))]
    heat = np.zeros((2, H, W))
    heat[0, 1, 1] = heat[1, 2, 4] = 1.0
    S = np.full((H, W), 0.5)
    options = dict(gamma=4.0, contour_width=3)
    R = ranking_scores(DenseProposals(masks), heat, S, **options)
    np.testing.assert_allclose(R, [[-1.1, -2.0], [-2.0, -1.1], [-47.6, -47.6]], atol=1e-12)
    weighed = RankingOptions(**options, instance_score="ranking_x_peak", peak_threshold=-np.inf)
    idx, score, peak = select_instances(DenseProposals(masks), heat, S, weighed, peak_values=logit([0.9, 0.3]))
    np.testing.assert_array_equal(peak, [0, 1])
    np.testing.assert_array_equal(idx, [0, 1])
    np.testing.assert_allclose(score, [-1.1 / 0.9, -1.1 / 0.3], atol=1e-12)
