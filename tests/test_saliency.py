"""The unsupervised saliency prior: exact small cases, an exact oracle, and synthetic objects."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from skimage.morphology import reconstruction

from cosegkit.config import Config
from cosegkit.data import Collection
from cosegkit.datasets import synthetic_collection
from cosegkit.evaluate import saliency_auc as roc_auc  # rank-based ROC AUC, ties count one half
from cosegkit.saliency import (
    as_unit_map,
    border_colour_map,
    center_prior,
    fill_from_border,
    mbd_map,
    prior_maps,
    saliency_prior,
)


def test_roc_auc_helper():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75


# ------------------------------------------------------------ minimum barrier


def test_fill_from_border_hand_case():
    values = np.array([[0, 0, 0, 0, 0], [0, 5, 5, 5, 0], [0, 5, 1, 2, 0], [0, 5, 5, 5, 0], [0, 0, 0, 0, 0]], float)[
        ..., None
    ]
    filled = fill_from_border(values, passes=None)[..., 0]
    # the 1 is walled in by 5s except through the 2 at (2, 3): its lowest escape climbs to 2
    assert filled[2, 2] == 2
    np.testing.assert_array_equal(filled[values[..., 0] != 1], values[..., 0][values[..., 0] != 1])


def test_fill_from_border_matches_morphological_reconstruction():
    rng = np.random.default_rng(0)
    values = rng.random((23, 31, 2))
    exact = fill_from_border(values, passes=None)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    for c in range(2):
        channel = values[..., c]
        seed = np.full_like(channel, channel.max())
        seed[0], seed[-1], seed[:, 0], seed[:, -1] = channel[0], channel[-1], channel[:, 0], channel[:, -1]
        oracle = reconstruction(seed, channel, method="erosion", footprint=cross)
        np.testing.assert_allclose(exact[..., c], oracle)
    few = fill_from_border(values, passes=1)
    assert np.all(few >= exact - 1e-12)  # fewer passes: an upper bound that only comes down


def test_mbd_of_a_bright_square_is_its_contrast():
    lab = np.zeros((12, 14, 3))
    lab[4:8, 5:10, 0] = 30.0
    lab[4:8, 5:10, 1] = -10.0  # two channels differ: contrasts add
    barrier = mbd_map(lab)
    inside = np.zeros((12, 14), bool)
    inside[4:8, 5:10] = True
    np.testing.assert_allclose(barrier[inside], 40.0)
    np.testing.assert_allclose(barrier[~inside], 0.0)


def test_border_colour_map_ranks_the_odd_colour_highest():
    rng = np.random.default_rng(1)
    lab = np.zeros((30, 30, 3)) + rng.normal(0, 1, (30, 30, 3))
    lab[12:18, 12:18] += (50.0, 20.0, -20.0)
    cue = border_colour_map(lab)
    assert cue[12:18, 12:18].min() > cue[:6].max()


def test_center_prior_peaks_in_the_middle():
    prior = center_prior((9, 11))
    assert np.unravel_index(prior.argmax(), prior.shape) == (4, 5)
    np.testing.assert_allclose(prior, prior[::-1, ::-1])


# ------------------------------------------------------------- saliency_prior


def _object_image():
    """A red disc on a textured green-grey background, ``(96, 128, 3)``, and its mask."""
    rng = np.random.default_rng(3)
    image = np.zeros((96, 128, 3))
    image[:] = (90, 120, 90)
    image += rng.normal(0, 12, image.shape)
    rows, cols = np.mgrid[:96, :128]
    disc = (rows - 50) ** 2 + (cols - 70) ** 2 < 18**2
    image[disc] = (220, 40, 30)
    return np.clip(image, 0, 255).astype(np.uint8), disc


def test_prior_range_shape_and_determinism():
    image, _ = _object_image()
    first = saliency_prior(image)
    assert first.shape == (96, 128) and first.dtype == np.float32
    assert first.min() == 0.0 and first.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(first, saliency_prior(image.copy()))
    assert saliency_prior(image, out_size=(40, 50)).shape == (40, 50)


def test_prior_finds_a_known_object():
    image, disc = _object_image()
    prior = saliency_prior(image)
    assert roc_auc(prior, disc) > 0.95
    split = prior > prior.mean()
    assert (split & disc).sum() / (split | disc).sum() > 0.5
    assert roc_auc(saliency_prior(image, method="center"), disc) < roc_auc(prior, disc)


def test_prior_finds_synthetic_instances():
    collection = synthetic_collection(n_images=4, seed=2)
    for image, masks in zip(collection.images, collection.gt_masks):
        assert roc_auc(saliency_prior(image, work_size=96), masks.any(axis=0)) > 0.8


def test_power_keeps_the_ranking_and_lowers_the_mean():
    image, _ = _object_image()
    linear = saliency_prior(image, power=1.0, work_size=128)  # 96 × 128 at work size 128: no resizing
    squared = saliency_prior(image, power=2.0, work_size=128)
    np.testing.assert_allclose(squared, linear.astype(np.float64) ** 2, atol=1e-6)
    assert (squared > squared.mean()).mean() < (linear > linear.mean()).mean()


def test_flat_image_falls_back_to_centre_prior():
    prior = saliency_prior(np.full((30, 40, 3), 77, np.uint8))
    assert np.isfinite(prior).all() and prior.max() == pytest.approx(1.0)
    assert prior[15, 20] > prior[0, 0]


def test_tiny_image():
    prior = saliency_prior(np.random.default_rng(0).integers(0, 256, (20, 32, 3), dtype=np.uint8))
    assert prior.shape == (20, 32) and 0.0 <= prior.min() and prior.max() <= 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        saliency_prior(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="method"):
        saliency_prior(np.zeros((10, 10, 3), np.uint8), method="magic")


def test_prior_is_fast_enough():
    image = np.random.default_rng(0).integers(0, 256, (448, 448, 3), dtype=np.uint8)
    saliency_prior(image)
    start = time.perf_counter()
    saliency_prior(image)
    assert time.perf_counter() - start < 1.0  # spec §6: well under a second (≈ 0.02 s on an idle core)


# ----------------------------------------------------------------- prior_maps


@pytest.fixture
def small_collection():
    image, _ = _object_image()
    return Collection.from_arrays([image, image[:, ::-1], image[::-1]], names=["a", "b", "c"])


def test_prior_maps_follow_config(small_collection):
    maps = prior_maps(small_collection)
    assert [m.shape for m in maps] == [(96, 128)] * 3
    np.testing.assert_allclose(maps[1], maps[0][:, ::-1], atol=1e-6)  # mirrored image, mirrored map
    center = prior_maps(small_collection, Config(prior="center"), out_size=(32, 32))
    assert [m.shape for m in center] == [(32, 32)] * 3
    np.testing.assert_allclose(center[0], saliency_prior(small_collection[0], (32, 32), method="center"))


def test_user_maps_from_folder(small_collection, tmp_path):
    for value, name in [(0, "a"), (255, "b"), (51, "c")]:
        Image.fromarray(np.full((48, 64), value, np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "unrelated.png").write_bytes(b"")  # never read
    maps = prior_maps(small_collection, user_maps=tmp_path)
    assert [m.shape for m in maps] == [(96, 128)] * 3
    np.testing.assert_allclose([m.mean() for m in maps], [0.0, 1.0, 0.2], atol=1e-6)


def test_user_map_16_bit_png(small_collection, tmp_path):
    for name in "abc":
        Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / f"{name}.png")
    np.testing.assert_allclose(prior_maps(small_collection, user_maps=tmp_path)[0], 32768 / 65535, atol=1e-6)


def test_missing_user_map_names_the_image(small_collection, tmp_path):
    for name in "ab":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"{name}.png")
    with pytest.raises(FileNotFoundError, match="'c'.*c.png"):
        prior_maps(small_collection, user_maps=tmp_path)


def test_user_maps_callable_and_list(small_collection):
    maps = prior_maps(small_collection, user_maps=lambda image: image[..., 0] * 2.0 + 1.0, out_size=(96, 128))
    red = small_collection[0][..., 0].astype(np.float64)
    np.testing.assert_allclose(maps[0], (red - red.min()) / np.ptp(red), atol=1e-5)  # min–max rescaled
    listed = prior_maps(small_collection, user_maps=[np.full((5, 5), 0.25)] * 3, out_size=(10, 10))
    np.testing.assert_allclose(listed[2], 0.25)  # already in [0, 1]: kept
    with pytest.raises(ValueError, match="2 user saliency maps for 3 images"):
        prior_maps(small_collection, user_maps=[np.zeros((5, 5))] * 2)


def test_as_unit_map():
    assert as_unit_map(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert as_unit_map(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    assert as_unit_map(np.array([[2.0, 4.0, 6.0]])).tolist() == [[0.0, 0.5, 1.0]]
    assert as_unit_map(np.full((2, 2, 3), 255, np.uint8)).shape == (2, 2)
    with pytest.raises(ValueError, match="shape"):
        as_unit_map(np.zeros(5))
