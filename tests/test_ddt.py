"""DDT co-localisation: the first principal direction of a collection's features."""

import numpy as np
import pytest
import torch

from cosegkit.baselines import prior_components
from cosegkit.ddt import collection_features, common_direction, ddt_components, ddt_head, ddt_maps, fit_logistic
from cosegkit.model import CoSaliencyNet
from cosegkit.saliency import resize_map


def two_object_cells():
    """Six cells over two images: one object cell per image with feature (2, 2), the rest 0."""
    f = torch.zeros(2, 2, 1, 3)
    f[0, :, 0, 0] = 2.0
    f[1, :, 0, 2] = 2.0
    return f


def test_indicator_matches_hand_computation():
    # μ = (2/3, 2/3), v = (1, 1)/√2: object 2·(1 − 1/3)·√2 = 1.8856, background −(2/3)·√2 = −0.9428
    maps = ddt_maps(two_object_cells())
    obj, bg = 4 / 3 * np.sqrt(2), -2 / 3 * np.sqrt(2)
    np.testing.assert_allclose(maps, [[[obj, bg, bg]], [[bg, bg, obj]]], atol=1e-12)


def test_sign_follows_the_prior_when_given():
    f = two_object_cells()
    prior_on_objects = np.zeros((2, 4, 6))
    prior_on_objects[0, :, :2] = 1.0
    prior_on_objects[1, :, 4:] = 1.0
    np.testing.assert_allclose(ddt_maps(f, prior_on_objects), ddt_maps(f), atol=1e-12)
    # a prior that prefers the background flips the sign: the zero cells become the positive side
    np.testing.assert_allclose(ddt_maps(f, 1.0 - prior_on_objects), -ddt_maps(f), atol=1e-12)


def test_common_direction_matches_numpy_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4, 6)) * np.array([3.0, 1.0, 0.5, 0.2, 0.1])[None, :, None, None]
    x += rng.normal(size=(1, 5, 1, 1))
    mean, direction = common_direction(torch.from_numpy(x))
    cells = x.transpose(0, 2, 3, 1).reshape(-1, 5)
    np.testing.assert_allclose(mean.numpy(), cells.mean(0), atol=1e-12)
    values, vectors = np.linalg.eigh(np.cov(cells.T, bias=True))
    assert abs(float(direction.numpy() @ vectors[:, -1])) == pytest.approx(1.0, abs=1e-10)


def test_components_recover_a_shared_object_among_varied_backgrounds():
    rng = np.random.default_rng(1)
    n, c, h, w = 5, 16, 8, 8
    object_feature = rng.normal(size=c)
    features = rng.normal(size=(n, c, h, w)) * 0.1  # backgrounds differ from image to image
    truth = np.zeros((n, h, w), bool)
    for i in range(n):
        r, q = rng.integers(0, 5, size=2)
        truth[i, r : r + 3, q : q + 3] = True
        features[i][:, truth[i]] += object_feature[:, None] * 2
    maps = ddt_maps(torch.from_numpy(features))
    assert np.array_equal(maps > 0, truth)
    masks, scores = ddt_components(maps[0], (32, 32))
    expected = np.kron(truth[0], np.ones((4, 4), bool))
    assert len(masks) == 1 and scores[0] > 0
    assert masks[0][expected].all()  # the whole object, and a rim where the bilinear map crosses 0
    assert np.array_equal(masks[0], resize_map(maps[0], (32, 32)) > 0)
    assert (masks[0] & expected).sum() / (masks[0] | expected).sum() > 0.6


def test_prior_components_split_at_a_given_threshold():
    values = np.array([[0.0, 0.2, 0.0, 0.9], [0.0, 0.2, 0.0, 0.9]])
    assert len(prior_components(values)[0]) == 1  # mean 0.275: only the 0.9 column
    masks, _ = prior_components(values, threshold=0.1)
    assert [int(m.sum()) for m in masks] == [2, 2]


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        ddt_maps(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="priors must be"):
        ddt_maps(two_object_cells(), np.zeros((3, 4, 4)))


def test_collection_features_run_the_backbone_on_every_image():
    net = CoSaliencyNet(backbone="simple", pretrained=False).eval()
    images = [np.full((40, 60, 3), v, np.uint8) for v in (0, 128, 255)]
    feats = collection_features(net, images, size=64, chunk=2)
    assert feats.shape[0] == 3 and feats.shape[2:] == (2, 2)
    with torch.no_grad():
        single = net.backbone(net.normalize(torch.full((1, 3, 64, 64), 128 / 255.0)))
    torch.testing.assert_close(feats[1:2], single)


def test_fit_logistic_recovers_known_coefficients():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    a, b = fit_logistic(x, torch.sigmoid(2.0 * x - 1.0))
    assert a == pytest.approx(2.0, abs=1e-8) and b == pytest.approx(-1.0, abs=1e-8)


def test_fit_logistic_stops_where_the_cross_entropy_is_flat():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=500))
    y = torch.from_numpy(rng.uniform(size=500)) * (x > 0)  # soft targets, no exact logistic model
    a, b = fit_logistic(x, y)
    theta = torch.tensor([a, b], dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(theta[0] * x + theta[1], y)
    loss.backward()
    assert theta.grad.abs().max() < 1e-9 and a > 0


def test_ddt_head_outputs_the_scaled_indicator_and_matches_the_prior_level():
    rng = np.random.default_rng(3)
    features = torch.from_numpy(rng.normal(size=(4, 6, 5, 5)))
    truth = np.zeros((4, 5, 5), bool)
    truth[:, 1:3, 2:4] = True
    features[torch.from_numpy(truth)[:, None].expand(-1, 6, -1, -1)] += 3.0
    priors = np.kron(truth, np.ones((4, 4))) * 0.8 + 0.1  # (4, 20, 20), brighter on the objects
    weight, bias = ddt_head(features, priors)
    z = torch.einsum("nchw,c->nhw", features, weight) + bias
    indicator = torch.from_numpy(ddt_maps(features, priors))
    a, b = fit_logistic(indicator / indicator.std(), torch.from_numpy(np.where(truth, 0.9, 0.1)))
    torch.testing.assert_close(z, a * indicator / indicator.std() + b)
    assert (z[torch.from_numpy(truth)].min() > z[torch.from_numpy(~truth)].max()).item()
