"""cosegkit.diagnostics on small cases worked out by hand."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from cosegkit import diagnostics
from cosegkit.proposals import Proposals


def block(shape, rows, cols) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


# ---------------------------------------------------------------- maps against the union of the instances


def test_mean_inside_outside_skips_images_without_a_split():
    values = np.zeros((2, 2))
    values[0, 0] = 1.0
    gt = block((2, 2), slice(0, 1), slice(0, 2))[None]  # the top row: mean 0.5 inside, 0 outside
    empty, full = np.zeros((0, 2, 2), bool), np.ones((1, 2, 2), bool)
    assert diagnostics.mean_inside_outside([values, values, values], [gt, empty, full]) == (0.5, 0.0)
    other = np.full((2, 2), 0.25)
    assert diagnostics.mean_inside_outside([values, other], [gt, gt]) == pytest.approx((0.375, 0.125))


def test_mean_area_fraction_is_over_all_masks_of_all_images():
    one = block((2, 2), 0, 0)[None]  # 1 / 4
    two = np.stack([block((2, 2), 0, slice(None)), np.ones((2, 2), bool)])  # 2 / 4 and 4 / 4
    assert diagnostics.mean_area_fraction([one, two, np.zeros((0, 2, 2), bool)]) == pytest.approx(
        (0.25 + 0.5 + 1.0) / 3
    )
    assert np.isnan(diagnostics.mean_area_fraction([np.zeros((0, 2, 2), bool)]))


def test_mean_auc_ranks_a_map_against_the_union():
    values = np.zeros((4, 4))
    values[:2, :2] = 1.0
    gt = block((4, 4), slice(0, 2), slice(0, 3))[None]
    # positives: four 1s and two 0s; negatives: ten 0s → (4·10 + 2·10·½) / 60
    assert diagnostics.mean_auc([values], [gt]) == pytest.approx(50 / 60)
    # a 2 × 2 map is resized to the mask's 4 × 4: its corner stays above everything else
    small = np.array([[1.0, 0.0], [0.0, 0.0]])
    corner = block((4, 4), slice(0, 2), slice(0, 2))[None]
    assert diagnostics.mean_auc([torch.from_numpy(small)], [corner]) == pytest.approx(1.0)
    # the mean is over the images that have instances; none → NaN
    empty = np.zeros((0, 4, 4), bool)
    assert diagnostics.mean_auc([values, small, values], [gt, corner, empty]) == pytest.approx((50 / 60 + 1.0) / 2)
    assert np.isnan(diagnostics.mean_auc([values], [empty]))


def test_mean_split_iou_and_saliency_scores():
    saliency = np.zeros((4, 4))
    saliency[:2, :2] = 1.0  # mean 0.25: the top-left 2 × 2 block is "salient"
    union = block((4, 4), slice(0, 2), slice(0, 3))  # 6 pixels, 4 of them found
    assert diagnostics.mean_split_iou(saliency, union) == pytest.approx(4 / 6)
    assert diagnostics.mean_split_iou(np.zeros((2, 2)), np.zeros((2, 2), bool)) == 0.0

    gt = union[None]
    auc, iou = diagnostics.saliency_scores([saliency], [gt], stride=1)
    assert auc == pytest.approx(50 / 60) and iou == pytest.approx(4 / 6)
    # images whose union is empty or covers everything are skipped; all skipped → NaN
    empty, full = np.zeros((0, 4, 4), bool), np.ones((1, 4, 4), bool)
    assert diagnostics.saliency_scores([saliency] * 3, [gt, empty, full], stride=1) == (auc, iou)
    assert all(np.isnan(v) for v in diagnostics.saliency_scores([saliency], [empty], stride=1))


def test_saliency_scores_read_a_strided_grid():
    saliency = np.zeros((4, 4))
    saliency[0, 0] = 1.0  # off-grid pixels are 0
    saliency[1, 1] = 5.0  # off the grid: not read
    gt = block((4, 4), 0, 0)[None]
    assert diagnostics.saliency_scores([saliency], [gt], stride=2) == (pytest.approx(1.0), pytest.approx(1.0))
    assert diagnostics.saliency_scores([saliency], [gt], stride=1)[0] < 1.0


def test_saliency_scores_see_a_flat_map_with_float_noise_as_flat():
    rng = np.random.default_rng(0)
    flat = (0.3 + rng.normal(0, 1e-8, (8, 8))).astype(np.float32)  # what resizing a constant map can give
    gt = block((8, 8), slice(0, 3), slice(0, 3))[None]
    auc, iou = diagnostics.saliency_scores([flat], [gt], stride=1)
    assert auc == pytest.approx(0.5) and iou == 0.0


# ---------------------------------------------------------------- peaks

Z = np.array(  # local maxima (3 × 3): 5 at (0, 0) and 4 at (3, 3); median 2
    [
        [5, 3, 2, 1],
        [3, 2, 1, 2],
        [2, 1, 2, 3],
        [1, 2, 3, 4],
    ],
    dtype=np.float32,
)


def test_peak_statistics_by_hand():
    # on an 8 × 8 image the cells' centres are pixels (1, 1) and (7, 7)
    a = block((8, 8), slice(0, 4), slice(0, 4))  # holds (1, 1)
    b = block((8, 8), slice(4, 6), slice(4, 6))  # holds neither
    saliency = a.astype(np.float32)
    stats = diagnostics.peak_statistics([Z], [saliency], [np.stack([a, b])])
    assert stats["peaks"] == 2 and stats["used peaks"] == 2
    assert stats["background"] == 0.5  # (3, 3) falls on no instance
    assert stats["hit"] == 0.5  # a is hit, b is not
    assert stats["S in"] == pytest.approx(16 / 20) and stats["S out"] == 0.0
    # positives: 16 ones and 4 zeros; negatives: 44 zeros → (16·44 + 4·44·½) / (20·44)
    assert stats["AUC"] == pytest.approx(0.9)

    only_top = diagnostics.peak_statistics([Z], [saliency], [np.stack([a, b])], threshold=4.5)
    assert only_top["used peaks"] == 1 and only_top["background"] == 0.0 and only_top["hit"] == 0.5


def test_peak_statistics_average_over_images():
    a = block((8, 8), slice(0, 4), slice(0, 4))
    saliency = a.astype(np.float32)
    stats = diagnostics.peak_statistics([Z, Z], [saliency, saliency], [a[None], np.zeros((0, 8, 8), bool)])
    assert stats["peaks"] == 2 and stats["used peaks"] == 2  # per image
    assert stats["background"] == 3 / 4  # one of two peaks, then both on the image without instances
    assert stats["hit"] == 1.0
    assert stats["AUC"] == pytest.approx(1.0)  # only the image with instances counts


# ---------------------------------------------------------------- proposals


def test_proposal_recall_by_hand():
    a, b = block((4, 4), slice(0, 2), slice(0, 2)), block((4, 4), slice(2, 4), slice(2, 4))
    first = Proposals.from_masks(np.stack([a, block((4, 4), 3, slice(2, 4))]))  # IoU 1 with a, 2 / 4 with b
    second = Proposals.from_masks(a[None])  # IoU 4 / 16 with the whole image
    gt = [np.stack([a, b]), np.ones((1, 4, 4), bool)]
    np.testing.assert_allclose(diagnostics.best_proposal_ious([first, second], gt), [1.0, 0.5, 0.25])
    recall = diagnostics.proposal_recall([first, second], gt)
    assert recall["proposals"] == 1.5 and recall["instances"] == 3
    assert recall["ABO"] == pytest.approx(1.75 / 3)
    assert recall["R@0.5"] == pytest.approx(2 / 3) and recall["R@0.7"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- random head


def test_randomise_head_is_seeded_and_bounded():
    def net():
        model = nn.Module()
        model.head = nn.Conv2d(16, 1, 1)
        nn.init.zeros_(model.head.weight)
        nn.init.constant_(model.head.bias, 0.3)
        return model

    a, b, c = net(), net(), net()
    for model, seed in ((a, 0), (b, 0), (c, 1)):
        diagnostics.randomise_head(model, seed)
    assert torch.equal(a.head.weight, b.head.weight) and not torch.equal(a.head.weight, c.head.weight)
    assert 0 < float(a.head.weight.detach().abs().max()) <= 1 / 4  # U(−1/√16, 1/√16)
    assert float(a.head.weight.detach().std()) > 0.05  # not all alike
    assert torch.equal(a.head.bias, torch.full((1,), 0.3))  # the bias is left as it was


def test_record_bytes_counts_each_part():
    from types import SimpleNamespace

    from cosegkit.diagnostics import record_bytes
    from cosegkit.proposals import Proposals

    masks = np.zeros((2, 4, 6), bool)
    masks[0, :2], masks[1, 2:] = True, True
    props = Proposals.from_masks(masks)
    record = SimpleNamespace(
        image=np.zeros((8, 12, 3), np.uint8),  # 288 bytes
        logits=np.zeros((2, 2), np.float32),  # 16
        saliency=np.zeros((8, 12), np.float32),  # 384
        saliency_work=np.zeros((4, 6), np.float32),  # 96
        prior_work=None,
        masks=np.zeros((1, 8, 12), bool),  # 96
        peaks=np.zeros((3, 2), np.int64),  # 48
        peak_values=np.zeros(3, np.float32),  # 12
        heatmaps=np.zeros((3, 4, 6), np.float32),  # 288
        proposals=props,
        ranking_cache={"key": {"sources": (None,), "terms": {"inside": np.zeros((2, 3))}}},  # 48
    )
    parts = record_bytes(record)
    assert parts["heat maps"] == 288 and parts["ranking terms"] == 48
    assert parts["maps"] == 288 + 16 + 384 + 96 + 96 + 48 + 12
    assert parts["proposals"] >= props.leaf_labels.nbytes + props.leaf_areas.nbytes  # labels, areas, sparse parts
    assert parts["total"] == parts["heat maps"] + parts["proposals"] + parts["ranking terms"] + parts["maps"]
