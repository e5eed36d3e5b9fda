"""benchmarks/quality.py: the untrained-network row and the DDT baseline row."""

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
