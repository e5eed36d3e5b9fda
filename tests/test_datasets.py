"""Data set loaders: the synthetic generator checked against its own colours, real sets against their files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from cosegkit.data import Collection
from cosegkit.datasets import data_root, load_balloon, load_pennfudan, load_via, synthetic_collection
from cosegkit.datasets.via import region_mask

# ------------------------------------------------------------------ synthetic


def _object_pixels(image: np.ndarray) -> np.ndarray:
    """Pixels of the synthetic object colour (documented in ``datasets.synthetic``)."""
    r, g, b = (image[..., c].astype(int) for c in range(3))
    return (r >= 160) & (g <= 80) & (b <= 60)


def test_synthetic_ground_truth_is_exactly_the_painted_objects():
    collection = synthetic_collection(n_images=8, size=(96, 120), instances=(1, 3), seed=4)
    assert isinstance(collection, Collection) and len(collection) == 8
    for image, masks in zip(collection.images, collection.gt_masks):
        assert image.shape == (96, 120, 3) and image.dtype == np.uint8
        assert masks.dtype == bool and masks.shape[1:] == (96, 120) and 1 <= len(masks) <= 3
        painted = _object_pixels(image)
        np.testing.assert_array_equal(masks.any(axis=0), painted)  # union: exactly the object-coloured pixels
        assert masks.sum(axis=0).max() == 1  # instances do not overlap
        components, count = ndimage.label(painted)  # 4-connected components = instances
        assert count == len(masks)
        found = sorted((components == k).sum() for k in range(1, count + 1))
        assert found == sorted(masks.sum(axis=(1, 2)).tolist())
        for mask in masks:
            assert len(np.unique(components[mask])) == 1  # each instance is one whole component
            assert not (mask[:3].any() or mask[-3:].any() or mask[:, :3].any() or mask[:, -3:].any())


def test_synthetic_instance_count_range():
    collection = synthetic_collection(n_images=5, instances=(2, 2), seed=0)
    assert [len(m) for m in collection.gt_masks] == [2] * 5
    counts = {len(m) for m in synthetic_collection(n_images=20, instances=(1, 3), seed=1).gt_masks}
    assert counts == {1, 2, 3}
    empty = synthetic_collection(n_images=2, instances=(0, 0))
    assert [m.shape for m in empty.gt_masks] == [(0, 128, 160)] * 2
    assert not _object_pixels(empty[0]).any()


def test_synthetic_is_seeded():
    first, again = synthetic_collection(seed=7), synthetic_collection(seed=7)
    other = synthetic_collection(seed=8)
    for a, b in zip(first.images + first.gt_masks, again.images + again.gt_masks):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="instances"):
        synthetic_collection(instances=(3, 1))
    with pytest.raises(ValueError, match="too small"):
        synthetic_collection(size=(10, 10))


# ------------------------------------------------------------------- data_root


def test_data_root_uses_environment(monkeypatch, tmp_path):
    (tmp_path / "PennFudanPed").mkdir()
    monkeypatch.setenv("COSEGKIT_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    assert data_root("PennFudanPed") == (tmp_path / "PennFudanPed").resolve()
    with pytest.raises(FileNotFoundError, match="COSEGKIT_DATA"):
        data_root("balloon")
    monkeypatch.setenv("COSEGKIT_DATA", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="set the environment variable COSEGKIT_DATA"):
        data_root()


# ------------------------------------------------------------------------- VIA


def _write_via(tmp_path, entries, wrap=False):
    project = {"_via_img_metadata": entries, "_via_settings": {}} if wrap else entries
    path = tmp_path / "via.json"
    path.write_text(json.dumps(project))
    return path


def test_via_polygons_rectangles_and_formats(tmp_path):
    for name in ("b.png", "a.png"):
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / name)
    square = {"name": "polygon", "all_points_x": [10, 20, 20, 10], "all_points_y": [5, 5, 15, 15]}
    rect = {"name": "rect", "x": 30, "y": 20, "width": 10, "height": 5}
    entries = {
        "b.png123": {
            "filename": "b.png",
            "regions": [{"shape_attributes": rect, "region_attributes": {}}],
        },  # VIA 2 list
        "a.png456": {
            "filename": "a.png",
            "regions": {"0": {"shape_attributes": square}, "1": {"shape_attributes": rect}},
        },  # VIA 1 dict
    }
    for wrap in (False, True):
        c = load_via(_write_via(tmp_path, entries, wrap), category="thing")
        assert c.names == ["a", "b"] and c.category == "thing"  # sorted by file name
        assert [m.shape for m in c.gt_masks] == [(2, 40, 50), (1, 40, 50)]
        square_mask = c.gt_masks[0][0]
        rows, cols = np.nonzero(square_mask)
        assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 15, 10, 20)
        assert square_mask.sum() == 121  # skimage.draw.polygon includes the vertices: 11 × 11 pixels
        np.testing.assert_array_equal(c.gt_masks[1][0], c.gt_masks[0][1])


def test_via_image_without_regions_and_unknown_shape(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / name)
    entries = {
        "a": {"filename": "a.png", "regions": {}},
        "b": {"filename": "b.png", "regions": [{"shape_attributes": {"name": "point", "cx": 1, "cy": 1}}]},
    }
    with pytest.warns(UserWarning, match="point"):
        c = load_via(_write_via(tmp_path, entries))
    assert [m.shape for m in c.gt_masks] == [(0, 10, 12), (0, 10, 12)]


def test_via_missing_image_is_named(tmp_path):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "a.png")
    entries = {"a": {"filename": "a.png", "regions": {}}, "g": {"filename": "ghost.jpg", "regions": {}}}
    with pytest.raises(FileNotFoundError, match="ghost.jpg"):
        load_via(_write_via(tmp_path, entries))


def test_via_ellipse_follows_via_rotation():
    # VIA rotates by theta clockwise on screen (y down): theta = π/4 tilts the long axis towards the lower right
    mask = region_mask({"name": "ellipse", "cx": 30, "cy": 30, "rx": 20, "ry": 5, "theta": np.pi / 4}, (60, 60))
    assert mask[40, 40] and mask[20, 20] and not mask[20, 40] and not mask[40, 20]
    disk = region_mask({"name": "circle", "cx": 10, "cy": 10, "r": 3}, (20, 20))
    assert 20 <= disk.sum() <= 36 and disk[10, 10]


# -------------------------------------------------------------------- real data


def _real(name):
    try:
        return data_root(name)
    except FileNotFoundError:
        pytest.skip(f"{name} data set not found (set COSEGKIT_DATA)")


def test_pennfudan_counts_and_boxes_match_the_annotation_files():
    root = _real("PennFudanPed")
    c = load_pennfudan(max_images=4)
    assert c.category == "person" and c.names[0] == "FudanPed00001" and len(c.gt_masks[0]) == 2
    for name, image, masks in zip(c.names, c.images, c.gt_masks):
        assert masks.shape[1:] == image.shape[:2] and masks.dtype == bool
        text = (root / "Annotation" / f"{name}.txt").read_text()
        assert len(masks) == int(re.search(r"Objects with ground truth : (\d+)", text).group(1))
        boxes = [tuple(map(int, b)) for b in re.findall(r"\((\d+), (\d+)\) - \((\d+), (\d+)\)", text)]
        for mask, (x0, y0, x1, y1) in zip(masks, boxes):
            rows, cols = np.nonzero(mask)  # annotation boxes are 1-based and inclusive
            assert np.allclose(
                [cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1], [x0, y0, x1, y1], atol=2
            )


def test_balloon_instances_match_the_json():
    root = _real("balloon")
    c = load_balloon(max_images=2)
    entries = json.loads((root / "train" / "via_region_data.json").read_text())
    regions = {e["filename"].rsplit(".", 1)[0]: len(e["regions"]) for e in entries.values()}
    assert c.category == "balloon" and len(c) == 2
    for name, image, masks in zip(c.names, c.images, c.gt_masks):
        assert masks.shape == (regions[name],) + image.shape[:2]
        assert masks.reshape(len(masks), -1).any(axis=1).all()  # every polygon covers pixels
    assert c.names[0] == "10464445726_6f1e3bbe6a_k" and len(c.gt_masks[0]) == 5
