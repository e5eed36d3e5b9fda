"""Image loading and the Collection: every awkward file is written here, in tmp_path."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from cosegkit.data import (
    Collection,
    CollectionError,
    ImageLoadError,
    as_rgb_uint8,
    load_collection,
    load_image,
    masks_from_label_map,
)


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def rgb(h=20, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ load_image: modes


def test_png_round_trip_is_exact(tmp_path):
    array = rgb()
    loaded = load_image(save(Image.fromarray(array), tmp_path / "a.png"))
    assert loaded.dtype == np.uint8 and loaded.shape == (20, 32, 3)
    np.testing.assert_array_equal(loaded, array)


def test_tiny_image_loads(tmp_path):
    assert load_image(save(Image.fromarray(rgb(20, 32)), tmp_path / "tiny.png")).shape == (20, 32, 3)
    assert load_image(save(Image.fromarray(rgb(1, 1)), tmp_path / "pixel.png")).shape == (1, 1, 3)


def test_grayscale_is_repeated_over_channels(tmp_path):
    gray = np.arange(20 * 32, dtype=np.uint8).reshape(20, 32)
    loaded = load_image(save(Image.fromarray(gray), tmp_path / "g.png"))
    assert loaded.shape == (20, 32, 3)
    for c in range(3):
        np.testing.assert_array_equal(loaded[..., c], gray)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: colour kept
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent black: becomes white
    rgba[1, 0] = (0, 0, 0, 128)  # half transparent black on white: ~127
    rgba[1, 1] = (200, 0, 0, 0)  # transparent red: white
    loaded = load_image(save(Image.fromarray(rgba), tmp_path / "t.png"))
    assert loaded[0, 0].tolist() == [10, 20, 30]
    assert loaded[0, 1].tolist() == [255, 255, 255]
    assert loaded[1, 1].tolist() == [255, 255, 255]
    assert np.all(np.abs(loaded[1, 0].astype(int) - 127) <= 1)


def test_palette_image(tmp_path):
    array = rgb(8, 8)
    palette_image = Image.fromarray(array).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(load_image(save(palette_image, tmp_path / "p.png")), expected)


def test_palette_with_transparency_is_white_where_transparent(tmp_path):
    indices = np.array([[0, 1], [1, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    loaded = load_image(save(image, tmp_path / "pt.png", transparency=1))  # index 1 (blue) is transparent
    assert loaded[0, 0].tolist() == [255, 0, 0]
    assert loaded[0, 1].tolist() == [255, 255, 255]


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # mode I;16
    with Image.open(path) as check:
        assert check.mode in ("I;16", "I")  # really a 16-bit file
    loaded = load_image(path)
    assert loaded[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.array_equal(loaded[..., 0], loaded[..., 2])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    loaded = load_image(save(cmyk, tmp_path / "c.jpg", quality=95))
    r, g, b = loaded.reshape(-1, 3).mean(axis=0)
    assert loaded.shape == (16, 16, 3) and r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # H=20, W=40: left half red, right half blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = save(Image.fromarray(stored), tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.shape == (40, 20, 3)  # displayed upright: portrait
    top, bottom = loaded[:18].reshape(-1, 3).mean(0), loaded[22:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # clockwise rotation takes the left (red) half to the top
    assert bottom[2] > 200 and bottom[0] < 60


# ----------------------------------------------------------- load_image: bad files


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(rgb(64, 64)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg.*(truncated|corrupt)"):
        load_image(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.png.*empty"):
        load_image(path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageLoadError, match="notes.jpg.*not an image"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_image_load_error_is_a_value_error():
    assert issubclass(ImageLoadError, ValueError) and issubclass(CollectionError, ValueError)


def _png_declaring(path, width, height):
    """A valid small PNG whose header claims width × height (CRC fixed)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_is_refused(tmp_path):
    path = _png_declaring(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageLoadError, match="bomb.png.*decompression bomb"):
        load_image(path)


def test_own_pixel_limit_is_checked_before_decoding(tmp_path):
    path = _png_declaring(tmp_path / "big.png", 12000, 9000)  # 108 MP: under Pillow's error limit
    with pytest.raises(ImageLoadError, match="12000×9000.*decompression bomb"):
        load_image(path)
    small = save(Image.fromarray(rgb(20, 32)), tmp_path / "small.png")
    with pytest.raises(ImageLoadError, match="max_pixels"):
        load_image(small, max_pixels=100)


# ----------------------------------------------------------------- conversions


def test_as_rgb_uint8_conversions():
    assert as_rgb_uint8(np.full((2, 3), 7, np.uint8)).shape == (2, 3, 3)
    assert as_rgb_uint8(np.full((2, 3, 3), 1.0)).max() == 255  # float in [0, 1]
    assert as_rgb_uint8(np.full((2, 3, 3), 0.5))[0, 0, 0] == 128
    assert as_rgb_uint8(np.full((2, 3, 3), 65535, np.uint16))[0, 0, 0] == 255
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = 9
    assert as_rgb_uint8(rgba).shape == (2, 3, 3) and as_rgb_uint8(rgba).max() == 0
    with pytest.raises(CollectionError, match="shape"):
        as_rgb_uint8(np.zeros((2, 3, 5)))
    with pytest.raises(CollectionError, match="0…255"):
        as_rgb_uint8(np.full((2, 3, 3), 300, np.int32))


def test_masks_from_label_map():
    label_map = np.array([[0, 3, 3], [1, 0, 3]])
    masks = masks_from_label_map(label_map)
    assert masks.shape == (2, 2, 3) and masks.dtype == bool
    assert masks[0].tolist() == [[False, False, False], [True, False, False]]  # label 1 first
    assert masks[1].tolist() == [[False, True, True], [False, False, True]]
    assert masks_from_label_map(np.zeros((4, 5), np.uint8)).shape == (0, 4, 5)


# ------------------------------------------------------------------- Collection


def test_collection_basics():
    images = [rgb(20, 32, 0), rgb(10, 12, 1), rgb(5, 6, 2)]
    gt = [np.ones((1, 20, 32), bool), np.zeros((0, 10, 12), bool), np.zeros((2, 5, 6), np.uint8)]
    c = Collection.from_arrays(images, names=["a", "b", "c"], gt_masks=gt, category="thing")
    assert len(c) == 3 and c.has_ground_truth and c.category == "thing"
    np.testing.assert_array_equal(c[1], images[1])
    assert c.paths == [None, None, None]
    assert c.gt_masks[2].dtype == bool and c.gt_masks[1].shape == (0, 10, 12)
    assert c.sizes == [(20, 32), (10, 12), (5, 6)]
    sub = c.subset([2, 0])
    assert sub.names == ["c", "a"] and sub.gt_masks[1].shape == (1, 20, 32) and len(sub) == 2
    assert "3 images" in repr(c) and "3 ground-truth instances" in repr(c)
    assert not Collection.from_arrays(images).has_ground_truth
    assert Collection.from_arrays(images).names == ["image_000", "image_001", "image_002"]


def test_collection_needs_two_images():
    with pytest.raises(CollectionError, match="at least 2 images of the same category; got 1"):
        Collection.from_arrays([rgb()])
    c = Collection.from_arrays([rgb(), rgb()])
    with pytest.raises(CollectionError, match="at least 2"):
        c.subset([0])


def test_gt_mask_size_mismatch_names_the_image():
    images = [rgb(20, 32), rgb(20, 32)]
    gt = [np.zeros((1, 20, 32), bool), np.zeros((1, 32, 20), bool)]  # second one transposed
    with pytest.raises(CollectionError, match="'second'.*32×20.*20×32"):
        Collection.from_arrays(images, names=["first", "second"], gt_masks=gt)


def test_gt_masks_must_be_per_instance_and_one_per_image():
    images = [rgb(), rgb()]
    with pytest.raises(CollectionError, match="masks_from_label_map"):
        Collection.from_arrays(images, gt_masks=[np.zeros((20, 32)), np.zeros((20, 32))])
    with pytest.raises(CollectionError, match="1 entries for 2 images"):
        Collection.from_arrays(images, gt_masks=[np.zeros((0, 20, 32))])


def test_duplicate_names_are_refused():
    with pytest.raises(CollectionError, match="unique"):
        Collection.from_arrays([rgb(), rgb()], names=["x", "x"])


# -------------------------------------------------------------- load_collection


def _folder(tmp_path, names):
    for i, name in enumerate(names):
        Image.fromarray(rgb(10 + i, 12, seed=i)).save(tmp_path / name)
    return tmp_path


def test_load_folder_sorted_and_skips_non_images(tmp_path):
    _folder(tmp_path, ["b.png", "a.jpg", "c.PNG"])
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "sub").mkdir()
    with pytest.warns(UserWarning, match="notes.txt") as record:
        c = load_collection(tmp_path)
    assert len(record) == 1 and ".DS_Store" not in str(record[0].message)
    assert c.names == ["a", "b", "c"]
    assert [p.name for p in c.paths] == ["a.jpg", "b.png", "c.PNG"]
    assert c[1].shape == (10, 12, 3)  # b.png was written first (i = 0)
    with pytest.warns(UserWarning, match="notes.txt"):
        assert load_collection(tmp_path, max_images=2).names == ["a", "b"]


def test_colliding_stems_use_file_names(tmp_path):
    _folder(tmp_path, ["x.png", "x.jpg"])
    assert load_collection(tmp_path).names == ["x.jpg", "x.png"]


def test_empty_folder_says_which_extensions(tmp_path):
    with pytest.raises(CollectionError, match=r"No images found.*\.jpg.*\.png"):
        load_collection(tmp_path)


def test_single_image_folder(tmp_path):
    _folder(tmp_path, ["only.png"])
    with pytest.raises(CollectionError, match="at least 2 images.*got 1"):
        load_collection(tmp_path)
    with pytest.raises(CollectionError, match="single file"):
        load_collection(tmp_path / "only.png")


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_collection(tmp_path / "missing")


def test_corrupt_image_in_folder_is_an_error(tmp_path):
    _folder(tmp_path, ["a.png", "b.png"])
    (tmp_path / "c.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="c.jpg"):
        load_collection(tmp_path)


def test_load_from_paths_and_arrays(tmp_path):
    _folder(tmp_path, ["a.png", "b.png", "c.png"])
    c = load_collection([tmp_path / "c.png", str(tmp_path / "a.png")])
    assert c.names == ["c", "a"] and c[0].shape == (12, 12, 3)
    arrays = [rgb(), rgb(4, 4)]
    c = load_collection(arrays)
    np.testing.assert_array_equal(c[1], arrays[1])
    assert load_collection(c) is c
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_collection([rgb(), rgb(), rgb()], max_images=2)) == 2
    from_pil = load_collection([Image.fromarray(arrays[0]), Image.fromarray(arrays[1])])
    np.testing.assert_array_equal(from_pil[0], arrays[0])
    with pytest.raises(TypeError, match="int"):
        load_collection([1, 2])
