"""benchmarks/quality.py: a smoke run, the untrained-network row and the DDT baseline row."""

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

quality = load_benchmark("quality")

from cosegkit.config import preset  # noqa: E402
from cosegkit.datasets import synthetic_collection  # noqa: E402
from cosegkit.pipeline import cosaliency, cosegment  # noqa: E402
from cosegkit.prm import heatmaps  # noqa: E402
from cosegkit.saliency import resize_map  # noqa: E402
from cosegkit.train import fit  # noqa: E402


@pytest.fixture(scope="module")
def untrained():
    collection = synthetic_collection(n_images=3, size=(96, 112), seed=3)
    config = preset("tiny", backbone="simple", pretrained=False, image_size=64, epochs=0, proposal_max_side=96)
    fitted = fit(collection, config)
    return collection, config, fitted


def test_an_untrained_head_gives_a_constant_z_and_zero_heat_maps(untrained):
    collection, config, fitted = untrained
    x, logits, _ = cosaliency(fitted.net, collection.images[0], config.image_size, torch.device("cpu"))
    assert np.ptp(logits) == 0  # zero head weights: Z is the bias everywhere
    every_cell = torch.tensor([(i, j) for i in range(logits.shape[0]) for j in range(logits.shape[1])])
    assert float(heatmaps(fitted.net, x, every_cell).abs().max()) == 0.0


def test_an_untrained_head_finds_nothing(untrained):
    collection, config, fitted = untrained
    result = cosegment(collection, config, net=fitted)
    assert all(len(r.peaks) == 0 and len(r.masks) == 0 for r in result.images)  # a constant Z has no peak
    assert result.evaluate()["mAP_r@0.25"] == 0.0


def test_ddt_row_gives_the_components_of_the_positive_indicator(untrained):
    collection, config, fitted = untrained
    predictions = quality.ddt_predictions(fitted.net, collection, config, fitted.priors)
    assert len(predictions) == len(collection)
    features = quality.collection_features(fitted.net, collection.images, config.image_size)
    indicators = quality.ddt_maps(features, fitted.priors)
    for (masks, scores), d, image in zip(predictions, indicators, collection.images):
        assert masks.shape[1:] == image.shape[:2] and len(masks) == len(scores)
        positive = resize_map(d, image.shape[:2]) > 0
        assert not (masks & ~positive).any()  # components lie inside the positive side
        assert np.all(np.diff(scores) <= 0)


def test_the_untrained_row_has_a_random_seeded_head_with_peaks(untrained):
    """quality.untrained_network: the head's weights are drawn (seeded), so Z has peaks and instances are found."""
    collection, config, _ = untrained
    a = quality.untrained_network(collection, config)
    b = quality.untrained_network(collection, config)
    c = quality.untrained_network(collection, config.replace(seed=1))
    assert torch.equal(a.net.head.weight, b.net.head.weight)  # seeded
    assert not torch.equal(a.net.head.weight, c.net.head.weight)
    bound = 1 / a.net.head.weight[0].numel() ** 0.5
    assert 0 < float(a.net.head.weight.detach().abs().max()) <= bound
    z, _ = quality.network_maps(a.net, collection.images[:1], config)[0]
    assert np.ptp(z) > 0
    result = cosegment(collection, config, net=a)
    assert all(len(r.peaks) > 0 for r in result.images) and result.n_instances > 0


def test_untrained_diagnostics_read_the_images_at_the_inference_size(untrained):
    """The diagnostics of the untrained row see Z on the grid the method's rows use (inference_size), not image_size."""
    collection, config, fitted = untrained
    finer = config.replace(inference_size=2 * config.image_size)
    ((z, s),) = quality.network_maps(fitted.net, collection.images[:1], finer)
    (coarse,) = quality.network_maps(fitted.net, collection.images[:1], config)
    assert z.shape == tuple(2 * n for n in coarse[0].shape)
    result = cosegment(collection.subset([0, 1]), finer, net=fitted.net)
    assert z.shape == result.images[0].logits.shape
    assert s.shape == collection.images[0].shape[:2]


def test_load_measures_the_split_it_is_asked_for(tmp_path):
    """--split: the synthetic collection's report images are another seed; real collections go through the loaders."""
    tune = quality.load("synthetic", 2, None, "tune")
    report = quality.load("synthetic", 2, None, "report")
    assert not np.array_equal(tune.images[0], report.images[0])
    assert np.array_equal(quality.load("synthetic", 2, None).images[0], tune.images[0])  # "all": seed 0, as before
    assert quality.SPLITS[0] == "report"  # the default of --split


def test_quality_smoke_run_writes_a_table_with_its_command(tmp_path):
    out = tmp_path / "quality.md"
    argv = ["--collections", "synthetic", "--max-images", "3", "--epochs", "1", "--preset", "tiny"]
    quality.main([*argv, "--out", str(out)])
    assert "python benchmarks/quality.py " + " ".join(argv) in out.read_text()
