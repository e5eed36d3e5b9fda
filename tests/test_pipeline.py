"""The whole method: synthetic collection with exact ground truth, rerank, COCO export, saving, command line."""

import json

import numpy as np
import pytest
from PIL import Image

from cosegkit.__main__ import main
from cosegkit.config import preset
from cosegkit.datasets import synthetic_collection
from cosegkit.pipeline import cosegment


@pytest.fixture(scope="module")
def collection():
    return synthetic_collection(n_images=6, seed=0)


@pytest.fixture(scope="module")
def result(collection):
    return cosegment(collection, preset("tiny"))


@pytest.fixture(scope="module")
def held_out():
    """Six other synthetic images (seed 1). The ``tiny`` preset (heatmap_power=3) and the thresholds below were
    chosen on the seed-0 collection the other tests use, so the quality assertion is checked here, on images
    nothing was tuned on."""
    collection = synthetic_collection(n_images=6, seed=1)
    return collection, cosegment(collection, preset("tiny"))


def test_finds_the_instances_of_a_synthetic_collection(held_out):
    collection, result = held_out
    scores = result.evaluate()
    assert scores["mAP_r@0.5"] >= 0.5, scores
    assert scores["CorLoc_r"] >= 0.5, scores
    for r, gt in zip(result.images, collection.gt_masks):
        assert r.masks.shape[1:] == gt.shape[1:] == r.image.shape[:2]  # original resolution
        assert r.saliency.shape == r.image.shape[:2]
        assert len(r.scores) == len(r.masks) == len(r.instance_peaks) >= 1
        assert np.all(np.diff(r.scores) <= 0)  # best first


def test_the_ablations_are_worse(result):
    """Without co-saliency in the ranking (paper Table 3) the masks get worse on this collection."""
    full = result.evaluate()["mAP_r@0.5"]
    without = result.rerank(use_cosaliency_in_ranking=False).evaluate()["mAP_r@0.5"]
    assert without < full


def test_without_cosaliency_the_score_is_r_alone(result):
    """The paper's "without co-saliency" ranking (Table 3) reads no S anywhere: S ≡ 1 in the heat terms, no γ term,
    and the instance score is R, not R weighted by S̃ at the peak (``tiny`` scores with ranking_x_peak)."""
    from cosegkit.ranking import select_instances

    assert result.config.ranking.instance_score == "ranking_x_peak"
    without = result.rerank(use_cosaliency_in_ranking=False)
    options = without.config.ranking
    for r, got in zip(result.images, without.images):
        use = r.used_peaks(options.peak_threshold)
        heat = np.maximum(r.heatmaps[use], 0) ** options.heatmap_power
        # R alone, from the maps powered here; S is not read at all
        plain = options.replace(heatmap_power=1.0, instance_score="ranking", ranking_saliency="cosaliency")
        idx, scores, peaks = select_instances(r.proposals, heat, np.zeros_like(r.saliency_work), plain)
        np.testing.assert_array_equal(got.proposal_indices, idx)
        np.testing.assert_allclose(got.scores, scores, rtol=1e-12)
        np.testing.assert_array_equal(got.instance_peaks, use[peaks])


def test_rerank_reproduces_and_changes_only_the_ranking(result):
    same = result.rerank()
    for a, b in zip(result.images, same.images):
        assert np.array_equal(a.masks, b.masks) and np.allclose(a.scores, b.scores)
        assert a.heatmaps is b.heatmaps and a.proposals is b.proposals  # nothing heavy recomputed
    strict = result.rerank(nms_iou=0.0, peak_threshold=1e9)
    assert strict.n_instances == 0  # no peak above 1e9: nothing found
    assert result.n_instances > 0  # the original is untouched
    with pytest.raises(TypeError, match="cannot change"):
        result.rerank(epochs=3)


def test_rerank_from_cached_terms_equals_ranking_from_scratch(result):
    """rerank recombines cached ranking terms; the answer must equal select_instances run from scratch."""
    from cosegkit.ranking import cached_terms_for, select_instances

    changes = dict(
        beta=0.5,
        gamma=3e-6,
        nms_iou=0.5,
        ranking_saliency="cosaliency",
        ranking_saliency_norm="max",
        instance_score="ranking_x_peak",
    )
    fast = result.rerank(**changes)
    config = result.config.replace(**changes)
    for r, got in zip(result.images, fast.images):
        idx, scores, peaks = select_instances(
            r.proposals, r.heatmaps, r.saliency_work, config.ranking, peak_values=r.peak_values, logits=r.logits
        )  # no cache: terms computed afresh for the peaks in use
        np.testing.assert_array_equal(got.proposal_indices, idx)
        np.testing.assert_allclose(got.scores, scores, rtol=1e-12)
        np.testing.assert_array_equal(got.instance_peaks, peaks)
    # the terms are shared between reranks, and invalidated when the heat maps change
    entries = [id(e) for r in fast.images for e in r.ranking_cache.values()]
    again = result.rerank(**{**changes, "gamma": 1e-5})
    assert [id(e) for r in again.images for e in r.ranking_cache.values()] == entries
    from dataclasses import replace

    r0 = replace(result.images[0], heatmaps=result.images[0].heatmaps * 0)
    terms = cached_terms_for(
        r0.ranking_cache, r0.proposals, r0.heatmaps, r0.saliency_work, r0.prior_work, config.ranking
    )
    assert not terms["inside"].any()  # new heat maps (all zero): new terms


def test_rerank_equals_a_fresh_cosegment_with_those_options(result, collection):
    """Flat names reach Config.ranking, and reranking gives what the whole pipeline gives with those options."""
    changes = dict(beta=0.6, nms_iou=0.3, heatmap_power=1.0, gamma_mode="pixels", peak_threshold=0.0)
    fast = result.rerank(**changes)
    fresh = cosegment(collection, preset("tiny", **changes), net=result.fit)
    assert fresh.config.ranking == fast.config.ranking == result.config.ranking.replace(**changes)
    assert fast.n_instances > 0
    for a, b in zip(fast.images, fresh.images):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.instance_peaks, b.instance_peaks)


def test_heat_maps_only_for_the_peaks_in_use_and_a_lower_threshold_adds_them(result, collection):
    """A record keeps heat maps for the peaks at or above the threshold; rerank to a lower one computes the rest,
    and gives what a fresh run with that threshold gives (same peaks, heat maps, instances)."""
    for r in result.images:
        assert len(r.peaks) == len(r.heatmaps) == len(r.used_peaks(result.config.ranking.peak_threshold))
        assert (r.peak_values >= r.peak_floor).all()
    lower = result.rerank(peak_threshold=-1e9)  # every local maximum
    fresh = cosegment(collection, result.config.replace(peak_threshold=-1e9), net=result.fit)
    assert sum(len(r.peaks) for r in lower.images) > sum(len(r.peaks) for r in result.images)
    for a, b, before in zip(lower.images, fresh.images, result.images):
        np.testing.assert_array_equal(a.peaks, b.peaks)
        np.testing.assert_allclose(a.heatmaps, b.heatmaps, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert len(before.heatmaps) <= len(a.heatmaps) and before.peak_floor >= a.peak_floor  # original unchanged
    back = lower.rerank(peak_threshold=result.config.ranking.peak_threshold)  # a higher threshold: nothing new
    for a, b in zip(back.images, result.images):
        np.testing.assert_array_equal(a.masks, b.masks)


def test_results_keep_the_prior_and_rank_with_the_geometric_mean(result, collection):
    """ranking_saliency="geometric_mean" ranks with √(S · Ŝ): the same as ranking from scratch with that map."""
    from cosegkit.ranking import select_instances
    from cosegkit.saliency import resize_map
    from cosegkit.train import compute_priors

    priors = compute_priors(collection, result.config)
    for r, prior in zip(result.images, priors):
        assert r.prior_work.shape == r.saliency_work.shape
        np.testing.assert_allclose(r.prior_work, resize_map(prior.numpy(), r.saliency_work.shape).clip(0, 1), atol=1e-6)
    fused = result.rerank(ranking_saliency="geometric_mean")
    plain = result.rerank(ranking_saliency="cosaliency")
    options = result.config.ranking.replace(ranking_saliency="cosaliency")  # S passed in below is already fused
    changed = 0
    for r, got, other in zip(result.images, fused.images, plain.images):
        S = np.sqrt(r.saliency_work * r.prior_work)
        idx, scores, _ = select_instances(
            r.proposals, r.heatmaps, S, options, peak_values=r.peak_values, logits=r.logits
        )
        np.testing.assert_array_equal(got.proposal_indices, idx)
        np.testing.assert_allclose(got.scores, scores, rtol=1e-12)
        changed += not np.array_equal(got.scores, other.scores)
    assert changed  # a different map gives different scores
    np.testing.assert_allclose(fused.rerank(ranking_saliency="cosaliency").images[0].scores, plain.images[0].scores)


def test_a_bare_network_gets_its_priors_computed(result, collection):
    """cosegment(net=<a network>) has no training priors: it computes them, the same maps."""
    again = cosegment(collection, result.config, net=result.fit.net, proposals=[r.proposals for r in result.images])
    assert "saliency prior" in again.timings and "saliency prior" not in result.timings
    for a, b in zip(result.images, again.images):
        np.testing.assert_allclose(a.prior_work, b.prior_work, atol=1e-6)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_inference_size_reads_the_images_on_a_finer_grid(result, collection):
    """The trained network reads images at inference_size: Z's grid scales with it, S and masks stay at the original
    size.
    """
    part = collection.subset([0, 1])
    config = result.config.replace(inference_size=2 * result.config.image_size)
    finer = cosegment(part, config, net=result.fit.net, proposals=[r.proposals for r in result.images[:2]])
    for coarse, fine in zip(result.images[:2], finer.images):
        assert fine.logits.shape == tuple(2 * n for n in coarse.logits.shape)
        assert fine.saliency.shape == coarse.saliency.shape == coarse.image.shape[:2]
        assert fine.masks.shape[1:] == coarse.image.shape[:2]
        assert fine.heatmaps.shape[1:] == coarse.heatmaps.shape[1:]  # heat maps at the proposals' resolution
        assert len(fine.peaks) > len(coarse.peaks)  # more cells, more local maxima
    assert result.config.replace(inference_size=None).input_size_at_inference == result.config.image_size


def test_a_fit_result_of_other_images_is_refused(result, collection):
    """Priors travel with a FitResult; pairing them with fewer images would rank with other images' priors."""
    with pytest.raises(ValueError, match="priors for 6 images but the collection has 3"):
        cosegment(collection.subset([3, 4, 5]), result.config, net=result.fit)


def test_geometric_mean_without_a_prior_says_what_is_missing(result):
    from dataclasses import replace

    bare = replace(result, images=[replace(r, prior_work=None, ranking_cache={}) for r in result.images])
    with pytest.raises(ValueError, match="needs the saliency prior"):
        bare.rerank(ranking_saliency="geometric_mean")
    with pytest.raises(ValueError, match=r"RankingOptions.ranking_saliency must be one of .*got 'prior'"):
        result.rerank(ranking_saliency="prior")


def test_to_coco_round_trip(result, tmp_path):
    import pycocotools.mask as mask_utils
    from pycocotools.coco import COCO

    path = result.to_coco(tmp_path / "instances.json")
    meta = json.loads((tmp_path / "instances_images.json").read_text())
    gt = COCO()
    gt.dataset = {"images": meta["images"], "categories": meta["categories"], "annotations": []}
    gt.createIndex()
    dt = gt.loadRes(str(path))
    assert len(dt.anns) == result.n_instances
    for ann in dt.anns.values():
        r = result.images[ann["image_id"] - 1]
        k = int(np.argmin(np.abs(r.scores - ann["score"])))
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), r.masks[k])


FILES = ["a.jpg", "a.png", "b.jpg", "c.jpeg", "d.png", "e.PNG"]  # a.jpg and a.png differ only in the extension


def as_if_read_from_files(result, folder):
    """The result with its collection's paths set to ``folder / FILES[i]`` (what load_collection records)."""
    from dataclasses import replace

    return replace(result, collection=replace(result.collection, paths=[folder / f for f in FILES]))


def test_to_coco_names_the_files_and_matches_a_ground_truth_file_by_name(result, tmp_path):
    """instances_images.json gives each image's real file name, so predictions can be matched to the images of
    someone else's ground-truth file (other ids, other order) by name, and pycocotools loads them against it."""
    import pycocotools.mask as mask_utils
    from pycocotools.coco import COCO

    named = as_if_read_from_files(result, tmp_path / "photos")
    path = named.to_coco(tmp_path / "instances.json")
    meta = json.loads((tmp_path / "instances_images.json").read_text())
    assert [i["file_name"] for i in meta["images"]] == FILES
    # a ground-truth file of the same images, in reverse order, with ids 101…
    gt_images = [
        {"id": 101 + k, "file_name": f, "height": r.shape[0], "width": r.shape[1]}
        for k, (f, r) in enumerate(reversed(list(zip(FILES, named.images))))
    ]
    annotations = []
    for entry in gt_images:
        rle = mask_utils.encode(np.asfortranarray(np.ones((entry["height"], entry["width"]), np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        annotations.append(
            {
                "id": entry["id"],
                "image_id": entry["id"],
                "category_id": 1,
                "segmentation": rle,
                "area": entry["height"] * entry["width"],
                "bbox": [0, 0, entry["width"], entry["height"]],
                "iscrowd": 0,
            }
        )
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps({"images": gt_images, "annotations": annotations, "categories": meta["categories"]}))
    gt = COCO(str(gt_file))
    gt_id = {i["file_name"]: i["id"] for i in gt.dataset["images"]}
    ours = {i["id"]: gt_id[i["file_name"]] for i in meta["images"]}  # KeyError: a name the ground truth lacks
    detections = json.loads(path.read_text())
    for d in detections:
        d["image_id"] = ours[d["image_id"]]
    dt = gt.loadRes(detections)
    assert len(dt.anns) == named.n_instances
    for ann in dt.anns.values():
        image = gt.imgs[ann["image_id"]]
        r = named.images[FILES.index(image["file_name"])]
        assert (image["height"], image["width"]) == r.shape
        k = int(np.argmin(np.abs(r.scores - ann["score"])))
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), r.masks[k])


def test_save_writes_one_file_per_input_file(result, tmp_path):
    """a.jpg and a.png write a.jpg_instances.png and a.png_instances.png: neither overwrites the other."""
    named = as_if_read_from_files(result, tmp_path / "photos")
    named.save(tmp_path / "out", overlays=False)
    written = sorted(p.name for p in (tmp_path / "out").glob("*_instances.png"))
    assert written == sorted(f"{f}_instances.png" for f in FILES)
    for f, r in zip(FILES, named.images):
        ids = np.asarray(Image.open(tmp_path / "out" / f"{f}_instances.png"))
        assert ids.shape == r.shape and ids.max() == len(r.masks)


def test_file_names_from_several_folders_are_relative_to_their_common_folder(result, tmp_path):
    from dataclasses import replace

    paths = [tmp_path / ("day" if k % 2 else "night") / "a.jpg" for k in range(len(result))]
    paths[-1] = tmp_path / "day" / "x" / "b.png"
    mixed = replace(result, collection=replace(result.collection, paths=paths))
    names = mixed.file_names()
    assert names[:2] == ["night/a.jpg", "day/a.jpg"] and names[-1] == "day/x/b.png"
    stems = mixed.output_stems()
    assert stems[:3] == ["night_a.jpg", "day_a.jpg", "night_a.jpg_2"] and len(set(stems)) == len(stems)
    assert result.file_names() == [r.name for r in result.images]  # arrays: no file, the name stands in


def test_save_writes_instance_ids_and_overlays(result, tmp_path):
    result.save(tmp_path)
    r = result.images[0]  # given as an array: its name is the stem
    ids = np.asarray(Image.open(tmp_path / f"{r.name}_instances.png"))
    assert ids.shape == r.image.shape[:2]
    assert np.array_equal(ids == 1, r.masks[0] & ~np.any(r.masks[:0], axis=0))  # best instance is id 1
    assert (tmp_path / f"{r.name}_overlay.png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_command_line_segments_a_folder(collection, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, image in zip(collection.names[:3], collection.images[:3]):
        Image.fromarray(image).save(folder / f"{name}.png")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--out", str(out), "--preset", "tiny", "--epochs", "1", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3 and summary["instances"] >= 3
    assert set(summary["seconds"]) >= {"training", "proposals", "heat maps", "ranking"}
    assert (out / "instances.json").exists() and (out / "checkpoint.pt").exists()
    assert "instances" in capsys.readouterr().out
    images = json.loads((out / "instances_images.json").read_text())["images"]
    assert [i["file_name"] for i in images] == [f"{name}.png" for name in collection.names[:3]]
    assert all((out / f"{name}.png_instances.png").exists() for name in collection.names[:3])


def test_command_line_errors_are_clear_and_write_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert main(["segment", str(empty), "--out", str(out), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "cosegkit: error" in err and "no images" in err.lower()
    assert not out.exists() or not any(out.iterdir())


def test_help_teaches():
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
