"""benchmarks/quality.py: the untrained-network row ranks one peak per image instead of
back-propagating every cell of a constant Z; it must give exactly what the full method gives."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SPEC = importlib.util.spec_from_file_location("quality", Path(__file__).parents[1] / "benchmarks" / "quality.py")
quality = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = quality
SPEC.loader.exec_module(quality)

from cosegkit.config import preset  # noqa: E402
from cosegkit.datasets import synthetic_collection  # noqa: E402
from cosegkit.pipeline import cosaliency, cosegment  # noqa: E402
from cosegkit.prm import heatmaps  # noqa: E402
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


@pytest.mark.parametrize("changes", [{}, {"gamma_mode": "pixels", "gamma": 1e-4}, {"instance_score": "ranking"},
                                     {"ranking_saliency": "cosaliency"}, {"ranking_saliency": "geometric_mean"}])
def test_constant_head_predictions_equal_the_full_method(untrained, changes):
    collection, config, fitted = untrained
    config = config.replace(**changes)
    full = cosegment(collection, config, net=fitted)
    assert all(len(r.peaks) == r.logits.size for r in full.images)  # every cell of a constant Z is a peak
    maps = [(r.logits, r.saliency) for r in full.images]
    short = quality.constant_head_predictions(collection, config, maps, [r.proposals for r in full.images], fitted.priors.numpy())
    for (masks, scores), r in zip(short, full.images):
        assert len(scores) == len(r.scores) == 1  # all peaks pick one proposal; NMS keeps it once
        np.testing.assert_array_equal(masks, r.masks)
        np.testing.assert_allclose(scores, r.scores, rtol=1e-12)


def test_constant_head_predictions_refuse_a_varying_z(untrained):
    collection, config, fitted = untrained
    full = cosegment(collection, config, net=fitted)
    maps = [(r.logits + np.arange(r.logits.size).reshape(r.logits.shape), r.saliency) for r in full.images]
    with pytest.raises(ValueError, match="not constant"):
        quality.constant_head_predictions(collection, config, maps, [r.proposals for r in full.images], fitted.priors.numpy())


def test_ddt_row_gives_the_components_of_the_positive_indicator(untrained):
    collection, config, fitted = untrained
    predictions = quality.ddt_predictions(fitted.net, collection, config, fitted.priors)
    assert len(predictions) == len(collection)
    features = quality.collection_features(fitted.net, collection.images, config.image_size)
    indicators = quality.ddt_maps(features, fitted.priors)
    for (masks, scores), d, image in zip(predictions, indicators, collection.images):
        assert masks.shape[1:] == image.shape[:2] and len(masks) == len(scores)
        positive = quality.resize_map(d, image.shape[:2]) > 0
        assert not (masks & ~positive).any()  # components lie inside the positive side
        assert np.all(np.diff(scores) <= 0)
