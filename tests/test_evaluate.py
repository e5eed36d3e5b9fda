import numpy as np
import pytest

from cosegkit.evaluate import average_precision, coco_segm_ap, corloc_r, evaluate, map_r, saliency_auc
from cosegkit.masks import mask_iou


def box(h, w, rows, cols):
    m = np.zeros((h, w), dtype=bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


def stack(*masks, shape=(8, 8)):
    return np.array(masks, dtype=bool).reshape(-1, *shape)


def pred(masks, scores, shape=(8, 8)):
    return stack(*masks, shape=shape), np.asarray(scores, dtype=float)


# four disjoint 2 × 2 squares in an 8 × 8 image, and a background square
SQ = [box(8, 8, (0, 2), (0, 2)), box(8, 8, (0, 2), (4, 6)), box(8, 8, (4, 6), (0, 2)), box(8, 8, (4, 6), (4, 6))]
BACKGROUND = box(8, 8, (6, 8), (6, 8))


def test_mask_iou_by_hand():
    a = stack(box(8, 8, (0, 2), (0, 2)), box(8, 8, (0, 2), (0, 4)))  # 4 px, 8 px
    b = stack(box(8, 8, (0, 2), (1, 3)), box(8, 8, (6, 8), (6, 8)))  # 4 px overlapping by 2 / 4; disjoint
    np.testing.assert_allclose(mask_iou(a, b), [[2 / 6, 0], [4 / 8, 0]])


def test_average_precision_by_hand():
    # flags T F T T F T, 5 ground-truth instances
    #   k:          1     2     3     4     5     6
    #   precision:  1    1/2   2/3   3/4   3/5   2/3
    #   recall:    1/5   1/5   2/5   3/5   3/5   4/5
    #   monotone:   1    3/4   3/4   3/4   2/3   2/3     (max of the precisions to the right)
    # AP = 1/5·1 + 1/5·3/4 + 1/5·3/4 + 1/5·2/3 = 0.2 + 0.15 + 0.15 + 0.1333 = 0.6333
    # (without the monotone step it would be 1/5·(1 + 2/3 + 3/4 + 2/3) = 0.6167)
    ap = average_precision([True, False, True, True, False, True], 5)
    assert ap == pytest.approx(0.2 * (1 + 3 / 4 + 3 / 4 + 2 / 3))
    assert average_precision([True, True], 2) == 1.0
    assert average_precision([], 3) == 0.0
    assert average_precision([True], 0) == 0.0


def test_map_r_pools_images_and_matches_the_hand_computed_curve():
    # image A holds SQ0, SQ1, SQ2; image B holds SQ0, SQ3. Pooled by score:
    #   0.9 A:SQ0 (T)  0.8 B:background (F)  0.7 A:SQ1 (T)  0.6 B:SQ3 (T)  0.5 A:background (F)  0.4 B:SQ0 (T)
    # A:SQ2 is never found → the T F T T F T curve of the test above.
    predictions = [
        pred([SQ[0], SQ[1], BACKGROUND], [0.9, 0.7, 0.5]),
        pred([BACKGROUND, SQ[3], SQ[0]], [0.8, 0.6, 0.4]),
    ]
    ground_truth = [stack(SQ[0], SQ[1], SQ[2]), stack(SQ[0], SQ[3])]
    out = map_r(predictions, ground_truth)
    assert out[0.25] == pytest.approx(0.2 * (1 + 3 / 4 + 3 / 4 + 2 / 3))
    assert out[0.5] == pytest.approx(0.2 * (1 + 3 / 4 + 3 / 4 + 2 / 3))


def test_duplicate_detection_is_a_false_positive():
    # 0.9 → SQ0 (TP), 0.8 → SQ0 again: SQ0 is used, SQ1 has IoU 0 → FP, 0.7 → SQ1 (TP)
    # precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 → AP = 1/2·1 + 1/2·2/3 = 5/6
    predictions = [pred([SQ[0], SQ[0], SQ[1]], [0.9, 0.8, 0.7])]
    out = map_r(predictions, [stack(SQ[0], SQ[1])])
    assert out[0.5] == pytest.approx(5 / 6)


def test_a_used_instance_passes_the_prediction_to_the_next_best_one():
    # GT a = columns 0–3, b = columns 2–5 (rows 0–3, 16 px each, overlapping).
    # 0.9: exactly a → TP. 0.8: columns 0–4 (20 px): IoU 16/20 = 0.8 with a (used) and
    # 12/24 = 0.5 with b → matched to b: TP at t = 0.25, FP at t = 0.5 (0.5 is not > 0.5).
    a, b = box(4, 6, (0, 4), (0, 4)), box(4, 6, (0, 4), (2, 6))
    second = box(4, 6, (0, 4), (0, 5))
    np.testing.assert_allclose(mask_iou(second[None], np.stack([a, b])), [[0.8, 0.5]])
    out = map_r([pred([a, second], [0.9, 0.8], shape=(4, 6))], [np.stack([a, b])])
    assert out[0.25] == 1.0
    assert out[0.5] == pytest.approx(0.5)  # flags T F, 2 instances: 1/2·1


def test_iou_exactly_at_the_threshold_is_not_a_match():
    gt = box(8, 8, (0, 2), (0, 2))  # 4 px
    half = box(8, 8, (0, 1), (0, 2))  # 2 px inside → IoU 0.5
    quarter = box(8, 8, (0, 1), (0, 1))  # 1 px inside → IoU 0.25
    out = map_r([pred([half], [1.0])], [stack(gt)], thresholds=(0.25, 0.5))
    assert out == {0.25: 1.0, 0.5: 0.0}
    out = map_r([pred([quarter], [1.0])], [stack(gt)], thresholds=(0.25, 0.2))
    assert out == {0.25: 0.0, 0.2: 1.0}


def test_perfect_predictions_score_one():
    ground_truth = [stack(SQ[0], SQ[1]), stack(SQ[2])]
    predictions = [pred([SQ[1], SQ[0]], [0.3, 0.2]), pred([SQ[2]], [0.9])]
    assert evaluate(predictions, ground_truth) == {"mAP_r@0.25": 1.0, "mAP_r@0.5": 1.0, "CorLoc_r": 1.0}


def test_empty_predictions_score_zero():
    ground_truth = [stack(SQ[0]), stack(SQ[1], SQ[2])]
    empty = [(np.zeros((0, 8, 8), bool), np.zeros(0)), (np.zeros((0,)), [])]
    assert evaluate(empty, ground_truth) == {"mAP_r@0.25": 0.0, "mAP_r@0.5": 0.0, "CorLoc_r": 0.0}
    # one image empty, the other perfect: recall 1/3 at precision 1
    out = map_r([empty[0], pred([SQ[1], SQ[2]], [0.5, 0.4])], ground_truth)
    assert out[0.5] == pytest.approx(2 / 3)


def test_corloc_uses_only_the_top_mask_and_counts_empty_images_as_wrong():
    gt = stack(SQ[0], SQ[1])
    half = box(8, 8, (0, 1), (0, 2))  # IoU 0.5 with SQ0: correct, CorLoc uses ≥
    predictions = [
        pred([half], [0.9]),  # correct
        pred([BACKGROUND, SQ[0]], [0.9, 0.8]),  # top mask wrong, the right one is second → wrong
        (np.zeros((0, 8, 8), bool), np.zeros(0)),  # nothing predicted → wrong
        pred([SQ[3]], [0.1]),  # image without ground truth → left out
    ]
    ground_truth = [gt, gt, gt, np.zeros((0, 8, 8), bool)]
    assert corloc_r(predictions, ground_truth) == pytest.approx(1 / 3)
    assert corloc_r(predictions[:1], ground_truth[:1], iou=0.51) == 0.0


def test_metrics_average_over_categories():
    # category "cat": one perfect image (AP 1, CorLoc 1); "dog": one image, only a wrong mask (AP 0, CorLoc 0)
    predictions = [pred([SQ[0]], [0.1]), pred([BACKGROUND], [0.9])]
    ground_truth = [stack(SQ[0]), stack(SQ[1])]
    out = evaluate(predictions, ground_truth, categories=["cat", "dog"])
    assert out == {"mAP_r@0.25": 0.5, "mAP_r@0.5": 0.5, "CorLoc_r": 0.5}
    # pooled as one category instead: flags F T over 2 instances → AP = 1/2 · 1/2
    assert map_r(predictions, ground_truth)[0.5] == pytest.approx(0.25)


def test_wrong_resolution_and_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="original image resolution"):
        map_r([pred([np.ones((4, 4), bool)], [1.0], shape=(4, 4))], [stack(SQ[0])])
    with pytest.raises(ValueError, match="one per image"):
        map_r([], [stack(SQ[0])])
    with pytest.raises(ValueError, match="label map"):
        map_r([pred([SQ[0]], [1.0])], [SQ[0]])
    with pytest.raises(ValueError, match="scores"):
        map_r([pred([SQ[0]], [1.0, 0.5])], [stack(SQ[0])])


def test_coco_segm_ap_perfect_wrong_and_empty():
    ground_truth = [stack(SQ[0], SQ[1]), stack(SQ[2])]
    perfect = [pred([SQ[0], SQ[1]], [0.9, 0.8]), pred([SQ[2]], [0.7])]
    stats = coco_segm_ap(perfect, ground_truth)
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)
    wrong = [pred([BACKGROUND], [0.9]), pred([SQ[3]], [0.7])]
    assert coco_segm_ap(wrong, ground_truth)["AP"] == pytest.approx(0.0)
    empty = [(np.zeros((0, 8, 8), bool), np.zeros(0))] * 2
    assert coco_segm_ap(empty, ground_truth)["AP"] == 0.0
    out = evaluate(perfect, ground_truth, coco=True)
    assert out["COCO_AP"] == pytest.approx(1.0) and out["mAP_r@0.5"] == 1.0


def test_saliency_auc_hand_computed():
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of the 4 pairs are ordered right
    assert saliency_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert saliency_auc([0.1, 0.4, 0.35, 0.8], [1, 1, 0, 0]) == pytest.approx(0.25)
    # a tie between a positive and a negative counts ½: pairs (0.5>0.2) 1, (0.5=0.5) ½ → 0.75
    assert saliency_auc([0.2, 0.5, 0.5], [0, 0, 1]) == pytest.approx(0.75)
    assert saliency_auc(np.ones(5), [0, 1, 0, 1, 1]) == pytest.approx(0.5)
    assert np.isnan(saliency_auc([0.1, 0.2], [1, 1]))


def test_saliency_auc_matches_counting_pairs_on_random_data():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 300).astype(float)  # many ties
    labels = rng.random(300) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert saliency_auc(scores, labels) == pytest.approx(pairs)
