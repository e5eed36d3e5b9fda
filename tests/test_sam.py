"""Prompted proposals (cosegkit.sam): the segmenter's wiring on a tiny random model, the real
MobileSAM on a synthetic disc, the union with the watershed proposals, and the pipeline's
``proposals="sam" | "both"``."""

import doctest

import numpy as np
import pytest
import torch

import cosegkit.sam as sam_module
from cosegkit.config import preset
from cosegkit.datasets import synthetic_collection
from cosegkit.pipeline import cosegment
from cosegkit.proposals import Proposals, generate_proposals, proposals_for
from cosegkit.ranking import select_instances
from cosegkit.sam import (
    PromptableSegmenter,
    PromptedProposals,
    build_mobile_sam,
    combine_proposals,
    load_mobile_sam,
    peak_points,
    peak_prompts,
    prompted_proposals,
)
from cosegkit.weights import packaged_file


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return PromptableSegmenter(build_mobile_sam(tiny=True))


def disc_image(shape=(240, 320), centre=(120, 200), radius=50):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2
    image = np.full((*shape, 3), 25, np.uint8)
    image[disc] = (230, 200, 60)
    return image, disc


def test_module_example_runs():
    assert doctest.testmod(sam_module, raise_on_error=False).failed == 0


def test_tiny_segmenter_shapes_and_resolution(tiny):
    image, _ = disc_image((90, 150))
    emb = tiny.embed(image)
    assert emb.features.shape == (1, 256, 16, 16)
    assert emb.original_size == (90, 150) and emb.input_size == (154, 256)  # longer side at the input side
    points = np.array([[[75.0, 45.0]], [[10.0, 10.0]]])
    masks, iou = tiny.predict(emb, points, np.ones((2, 1)))
    assert masks.shape == (2, 3, 90, 150) and masks.dtype == bool and iou.shape == (2, 3)
    small, _ = tiny.predict(emb, points, np.ones((2, 1)), out_shape=(30, 50))
    assert small.shape == (2, 3, 30, 50)
    logits, _ = tiny.predict_logits(emb, points, np.ones((2, 1)))
    assert np.array_equal(masks, (logits > 0).numpy())
    with pytest.raises(ValueError, match="points must be"):
        tiny.predict(emb, points[0], np.ones(1))


def test_peak_points_are_cell_centres_in_image_pixels():
    xy = peak_points(np.array([[0, 0], [13, 6]]), (14, 7), (280, 70))
    assert np.allclose(xy, [[5.0, 10.0], [65.0, 270.0]])  # (x, y): columns scale by W / wz, rows by H / hz


def test_negative_prompts_are_the_other_chosen_peaks():
    peaks = np.array([[1, 1], [5, 5], [9, 9]])
    points, labels = peak_prompts(peaks, (10, 10), (100, 100), negatives=np.array([True, True, False]))
    assert points.shape == (3, 3, 2)
    assert labels.tolist() == [[1, 0, -1], [1, 0, -1], [1, 0, 0]]
    assert np.allclose(points[0, 1], [55, 55]) and np.allclose(points[1, 1], [15, 15])
    assert np.allclose(points[2, 1:], [[15, 15], [55, 55]])
    plain, plain_labels = peak_prompts(peaks, (10, 10), (100, 100))
    assert plain.shape == (3, 1, 2) and (plain_labels == 1).all()


def test_prompted_proposals_keep_the_peak_of_every_mask(tiny):
    image, _ = disc_image()
    peaks = np.array([[7, 8], [2, 2], [12, 3]])
    props = prompted_proposals(tiny, image, peaks, (14, 14), max_side=160)
    assert isinstance(props, PromptedProposals) and props.shape == (120, 160)
    assert 1 <= props.n <= 9 and set(props.peak_ids) <= {0, 1, 2}
    masks = props.masks(np.arange(props.n))
    assert len({m.tobytes() for m in masks}) == props.n  # repeated masks are kept once
    fractions = props.areas / (120 * 160)
    assert ((fractions > 0) & (fractions <= 0.85)).all()
    none = prompted_proposals(tiny, image, peaks, (14, 14), max_side=160, max_area=0.0)
    assert none.n == 0 and none.shape == (120, 160)
    empty = prompted_proposals(tiny, image, np.zeros((0, 2), int), (14, 14), max_side=160)
    assert empty.n == 0


def test_union_keeps_every_mask_exactly():
    rng = np.random.default_rng(0)
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    hierarchy = generate_proposals(image, max_side=80, n_leaves=60, cuts=(8,))
    masks = np.zeros((3, 60, 80), bool)
    masks[0, 10:40, 10:50] = True
    masks[1, 5:20, 30:70] = True
    masks[2, 30:, :] = True
    dense = PromptedProposals.from_masks(masks)
    dense.peak_ids[:] = [4, 4, 7]
    both = combine_proposals(hierarchy, dense)
    assert both.n == hierarchy.n + 3 and both.shape == hierarchy.shape
    assert np.array_equal(both.masks(np.arange(hierarchy.n)), hierarchy.masks(np.arange(hierarchy.n)))
    assert np.array_equal(both.masks(hierarchy.n + np.arange(3)), masks)
    assert both.peak_ids.tolist() == [-1] * hierarchy.n + [4, 4, 7]
    maps = rng.random((2, 60, 80))
    assert np.allclose(both.region_sums(maps), np.concatenate([hierarchy.region_sums(maps), dense.region_sums(maps)]))
    assert np.allclose(
        both.contour_sums(maps, 3), np.concatenate([hierarchy.contour_sums(maps, 3), dense.contour_sums(maps, 3)])
    )
    with pytest.raises(ValueError, match="one working resolution"):
        combine_proposals(hierarchy, PromptedProposals.from_masks(masks[:, :30]))


def test_ranking_picks_the_whole_object_among_dense_masks():
    """R chooses among prompted masks as among any proposals: a part, the object, the object with background."""
    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 30) ** 2 + (xx - 40) ** 2 < 15**2
    part = disc & (yy < 30)
    blob = (yy - 30) ** 2 + (xx - 40) ** 2 < 25**2
    props = PromptedProposals.from_masks(np.stack([part, disc, blob]))
    heat = np.exp(-((np.hypot(yy - 30, xx - 40) - 15) ** 2) / (2 * 2.0**2))[None]  # z⁺ heat gathers on edges
    saliency = disc.astype(float) * 0.95 + 0.02
    idx, scores, peaks = select_instances(props, heat, saliency, gamma=1e-4, gamma_mode="area", contour_width=3)
    assert idx.tolist() == [1] and peaks.tolist() == [0]


def test_real_mobile_sam_segments_a_disc_from_its_centre():
    packaged_file("mobile_sam", download=False)  # cached by `python -m cosegkit weights` (make setup)
    segmenter = PromptableSegmenter(load_mobile_sam("cpu"))
    image, disc = disc_image()
    masks, iou = segmenter.predict(segmenter.embed(image), np.array([[[200.0, 120.0]]]), np.ones((1, 1)))
    ious = [(m & disc).sum() / (m | disc).sum() for m in masks[0]]
    assert max(ious) > 0.9, ious


# ---------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def sam_results(tiny):
    """The tiny preset with the tiny random segmenter (wiring, not quality): hierarchy, sam and both."""
    collection = synthetic_collection(n_images=4, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sam_module, "segmenter_for", lambda config: tiny)
        base = cosegment(collection, preset("tiny", epochs=3))
        out = {"hierarchy": base}
        for source in ("sam", "both"):
            out[source] = cosegment(collection, preset("tiny", epochs=3, proposals=source), net=base.fit)
    return out


def test_sam_proposals_are_prompted_at_every_peak(sam_results):
    for r, h in zip(sam_results["sam"].images, sam_results["hierarchy"].images):
        props = r.proposals
        assert isinstance(props, PromptedProposals) and props.shape == h.proposals.shape == r.heatmaps.shape[1:]
        assert set(props.peak_ids) <= set(range(len(r.peaks))) and props.n <= 3 * len(r.peaks)
        assert np.array_equal(r.peaks, h.peaks)  # same network, same peaks
        assert r.masks.shape[1:] == r.image.shape[:2] and len(r.scores) >= 1
        assert np.array_equal(r.masks, props.masks(r.proposal_indices, out_shape=r.shape))


def test_both_is_the_union_of_the_two_sources(sam_results):
    for r, h, s in zip(*(sam_results[k].images for k in ("both", "hierarchy", "sam"))):
        assert r.proposals.n == h.proposals.n + s.proposals.n
        assert (r.proposals.peak_ids[: h.proposals.n] == -1).all()
        assert np.array_equal(r.proposals.peak_ids[h.proposals.n :], s.proposals.peak_ids)


def test_rerank_with_prompted_proposals_reuses_them(sam_results, monkeypatch):
    result = sam_results["sam"]
    monkeypatch.setattr(sam_module, "segmenter_for", lambda config: pytest.fail("rerank must not prompt again"))
    again = result.rerank(peak_threshold=-1e9, nms_iou=0.3)
    assert [r.proposals for r in again.images] == [r.proposals for r in result.images]
    same = result.rerank()
    for a, b in zip(same.images, result.images):
        assert np.array_equal(a.masks, b.masks) and np.allclose(a.scores, b.scores)


def test_unknown_proposal_source_is_refused():
    image, _ = disc_image((40, 40))
    with pytest.raises(ValueError, match="Config.proposals must be one of"):
        proposals_for(image, preset("tiny", proposals="mcg"))
    with pytest.raises(ValueError, match="pass peaks and logits"):
        proposals_for(image, preset("tiny", proposals="sam"))
    assert isinstance(proposals_for(image, preset("tiny")), Proposals)


def test_quality_benchmark_rows_for_other_sources_share_network_and_peaks(sam_results, tiny, monkeypatch):
    from benchmark_scripts import load_benchmark

    quality = load_benchmark("quality", "quality_sam")
    monkeypatch.setattr(sam_module, "segmenter_for", lambda config: tiny)
    base = sam_results["hierarchy"]
    rows = quality.other_sources(base, base.config, ["hierarchy", "sam", "both"])
    assert set(rows) == {"sam", "both"}  # the method's own source is its row already
    for source, (alt, t_prop, t_rank) in rows.items():
        assert alt.config.proposals == source and t_prop > 0 and t_rank > 0
        for a, b, s in zip(alt.images, base.images, sam_results["sam"].images):
            assert a.heatmaps is b.heatmaps and np.array_equal(a.peaks, b.peaks)
            expected = s.proposals.n if source == "sam" else b.proposals.n + s.proposals.n
            assert a.proposals.n == expected
    assert all(
        isinstance(r.proposals, Proposals) and not isinstance(r.proposals, PromptedProposals) for r in base.images
    )


def test_command_line_chooses_the_proposal_source():
    import argparse

    from cosegkit.__main__ import _add_common, _config

    parser = argparse.ArgumentParser()
    _add_common(parser)
    assert _config(parser.parse_args(["--proposals", "sam"])).proposals == "sam"
    assert _config(parser.parse_args(["--preset", "lite", "--proposals", "sam"])).proposals == "sam"
    assert _config(parser.parse_args(["--preset", "dino", "--proposals", "hierarchy"])).proposals == "hierarchy"
    assert _config(parser.parse_args([])).proposals == "sam"  # the default preset's own choice
    assert _config(parser.parse_args(["--preset", "lite"])).proposals == "hierarchy"
    with pytest.raises(SystemExit):
        parser.parse_args(["--proposals", "mcg"])
