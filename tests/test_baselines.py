"""Baselines and oracle on constructed cases whose answers are known exactly."""

import numpy as np
import pytest

from cosegkit.baselines import (
    best_proposal_iou,
    oracle_per_peak,
    peak_pixels,
    peaks_in_masks,
    prior_components,
    proposal_saliency,
    top_proposals_by_saliency,
)
from cosegkit.proposals import Proposals


def box(shape, r0, r1, c0, c1):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


# ------------------------------------------------------------------ prior components


def test_two_blobs_give_two_components_with_exact_masks_and_mass_order():
    shape = (40, 60)
    small, big = box(shape, 5, 15, 5, 15), box(shape, 20, 35, 30, 55)  # 100 and 375 pixels
    prior = 0.9 * small + 0.5 * big
    masks, scores = prior_components(prior)
    assert masks.shape == (2, *shape)
    # mass: 0.5·375 = 187.5 > 0.9·100 = 90, so the big, dimmer blob is first
    np.testing.assert_array_equal(masks[0], big)
    np.testing.assert_array_equal(masks[1], small)
    np.testing.assert_allclose(scores, [187.5 / 2400, 90 / 2400])


def test_components_threshold_is_the_mean_and_diagonal_pixels_connect():
    prior = np.zeros((10, 10))
    prior[2, 2] = prior[3, 3] = prior[4, 4] = 1.0  # a diagonal line: one 8-connected blob
    prior[8, 0] = 0.02  # above zero but below the mean (0.0302): background
    masks, _ = prior_components(prior, min_fraction=0)
    assert len(masks) == 1 and masks[0].sum() == 3 and not masks[0][8, 0]


def test_small_components_are_dropped_and_masks_resized_to_image():
    prior = np.zeros((100, 100))
    prior[10:30, 10:30] = 1.0  # 400 px = 4 %
    prior[80, 80] = 1.0  # 1 px = 0.01 % < 0.1 %: dropped
    masks, scores = prior_components(prior, image_shape=(200, 300))
    assert masks.shape == (1, 200, 300) and len(scores) == 1
    np.testing.assert_array_equal(masks[0], box((200, 300), 20, 60, 30, 90))


def test_flat_prior_gives_no_component():
    masks, scores = prior_components(np.full((8, 8), 0.3))
    assert masks.shape == (0, 8, 8) and scores.shape == (0,)


# ------------------------------------------------------------------ top proposals


@pytest.fixture
def salient_square_case():
    shape = (30, 40)
    square = box(shape, 10, 20, 15, 25)
    prior = square.astype(float)
    candidates = np.stack(
        [
            box(shape, 0, 30, 0, 40),  # 0: almost the whole image
            box(shape, 12, 18, 17, 23),  # 1: inside the square only
            box(shape, 8, 22, 13, 27),  # 2: the square plus a ring of background
            square,  # 3: exactly the salient square
            box(shape, 0, 8, 0, 10),  # 4: background corner
            box(shape, 10, 20, 14, 25),  # 5: the square plus one column (IoU 10/11 with 3)
        ]
    )
    return prior, candidates, square


def test_proposal_scores_match_hand_computation(salient_square_case):
    prior, candidates, _ = salient_square_case
    props = Proposals.from_masks(candidates)
    areas = np.array([1200, 36, 196, 100, 80, 110])
    inside = np.array([100, 36, 100, 100, 0, 100])  # Σ Ŝ over each candidate (Σ Ŝ = 100 in all)
    np.testing.assert_allclose(proposal_saliency(props, prior, "density"), inside / areas)
    contrast = inside / areas - np.divide(100 - inside, 1200 - areas, out=np.zeros(6), where=areas < 1200)
    np.testing.assert_allclose(proposal_saliency(props, prior, "contrast"), contrast)
    np.testing.assert_allclose(proposal_saliency(props, prior), inside / (areas + 100 - inside))
    np.testing.assert_allclose(proposal_saliency(props, prior)[3], 1.0)  # Ŝ is exactly this proposal


@pytest.mark.parametrize("score", ["soft_iou", "contrast"])
def test_proposal_exactly_on_the_salient_square_ranks_first(salient_square_case, score):
    prior, candidates, square = salient_square_case
    masks, scores = top_proposals_by_saliency(candidates, prior, k=3, nms_iou=0.4, score=score)
    np.testing.assert_array_equal(masks[0], square)
    assert scores[0] == pytest.approx(1.0)
    # Proposals 5 (IoU 0.91 with the square) and 2 (IoU 0.51) are suppressed; 1 lies inside
    # the square (IoU 0.36 < 0.4) and is kept, then the whole image (IoU 1/12).
    assert len(masks) == 3
    np.testing.assert_array_equal(masks[1], candidates[1])
    np.testing.assert_array_equal(masks[2], candidates[0])
    assert np.all(np.diff(scores) <= 0)


def test_top_proposals_without_nms_keeps_near_duplicates_and_resizes(salient_square_case):
    prior, candidates, _ = salient_square_case
    masks, scores = top_proposals_by_saliency(
        Proposals.from_masks(candidates), prior, k=3, nms_iou=1.01, out_shape=(60, 80)
    )
    assert masks.shape == (3, 60, 80)
    np.testing.assert_allclose(scores, [1.0, 100 / 110, 100 / 196])  # soft IoU: 3, then 5 and 2 beside it
    assert masks[0].sum() == 400  # the 10 × 10 square at twice the resolution


def test_soft_iou_prefers_the_whole_object_where_contrast_prefers_its_bright_core():
    shape = (30, 40)
    whole, core = box(shape, 10, 20, 15, 25), box(shape, 14, 16, 19, 21)  # 100 and 4 pixels
    prior = 0.6 * whole + 0.4 * core  # a dimmer object with a bright core
    props = Proposals.from_masks(np.stack([core, whole]))
    # contrast: core 1 − 57.6/1196 = 0.952 > whole 0.616; soft IoU: core 4/61.6 < whole 61.6/100
    np.testing.assert_allclose(proposal_saliency(props, prior, "contrast"), [1 - 57.6 / 1196, 0.616])
    np.testing.assert_allclose(proposal_saliency(props, prior), [4 / 61.6, 0.616])
    masks, _ = top_proposals_by_saliency(props, prior, k=1)
    np.testing.assert_array_equal(masks[0], whole)


def test_proposal_saliency_rejects_bad_input():
    props = Proposals.from_masks(box((6, 6), 0, 3, 0, 3)[None])
    with pytest.raises(ValueError, match="Unknown proposal score"):
        proposal_saliency(props, np.zeros((6, 6)), "mean")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        proposal_saliency(props, np.full((6, 6), 255.0))


# ------------------------------------------------------------------ oracle


def test_peak_pixels_map_cell_centres():
    # a 2 × 4 grid on a 10 × 20 image: cell (1, 3) covers rows 5–9, cols 15–19, centre (7, 17)
    np.testing.assert_array_equal(peak_pixels([[0, 0], [1, 3]], (2, 4), (10, 20)), [[2, 2], [7, 17]])


def test_peaks_in_masks():
    gt = np.stack([box((10, 20), 0, 5, 0, 10), box((10, 20), 5, 10, 10, 20)])
    inside = peaks_in_masks(np.array([[0, 0], [1, 3], [0, 3]]), (2, 4), gt)
    np.testing.assert_array_equal(inside, [[True, False], [False, True], [False, False]])


def test_best_proposal_iou_and_oracle():
    shape = (20, 20)
    person, other = box(shape, 2, 12, 2, 8), box(shape, 10, 18, 12, 18)  # 60 and 48 pixels
    candidates = np.stack(
        [
            box(shape, 2, 12, 2, 10),  # 0: person + 20 px, IoU 60/80 = 0.75
            box(shape, 0, 20, 0, 20),  # 1: everything
            box(shape, 10, 18, 12, 18),  # 2: exactly `other`
        ]
    )
    props = Proposals.from_masks(candidates)
    best_iou, best_index = best_proposal_iou(props, np.stack([person, other]))
    np.testing.assert_allclose(best_iou, [0.75, 1.0])
    np.testing.assert_array_equal(best_index, [0, 2])

    # grid 4 × 4 on 20 × 20: cells are 5 px, centres at 2, 7, 12, 17.
    # peak (1, 1) → pixel (7, 7): inside `person`; peak (0, 3) → (2, 17): background.
    masks, scores = oracle_per_peak(props, np.array([[1, 1], [0, 3]]), (4, 4), np.stack([person, other]))
    assert len(masks) == 1  # `other` holds no peak, the background peak returns nothing
    np.testing.assert_array_equal(masks[0], candidates[0])
    np.testing.assert_allclose(scores, [0.75])

    # two peaks, both instances found: best IoU first
    masks, scores = oracle_per_peak(
        props, np.array([[1, 1], [3, 3]]), (4, 4), np.stack([person, other]), out_shape=(40, 40)
    )
    assert masks.shape == (2, 40, 40)
    np.testing.assert_allclose(scores, [1.0, 0.75])


def test_oracle_keeps_a_proposal_chosen_by_two_instances_once():
    shape = (10, 10)
    left, right = box(shape, 0, 10, 0, 5), box(shape, 0, 10, 5, 10)
    props = Proposals.from_masks(box(shape, 0, 10, 0, 10)[None])  # only the union exists: IoU 0.5 with both
    masks, scores = oracle_per_peak(props, np.array([[0, 0], [0, 1]]), (1, 2), np.stack([left, right]))
    assert len(masks) == 1 and scores.tolist() == [0.5]


def test_oracle_without_ground_truth_or_peaks_is_empty():
    props = Proposals.from_masks(box((6, 6), 0, 3, 0, 3)[None])
    masks, scores = oracle_per_peak(props, np.zeros((0, 2)), (2, 2), box((6, 6), 0, 3, 0, 3)[None])
    assert masks.shape == (0, 6, 6) and scores.shape == (0,)
    masks, _ = oracle_per_peak(props, np.array([[0, 0]]), (2, 2), np.zeros((0, 6, 6), bool))
    assert masks.shape == (0, 6, 6)
