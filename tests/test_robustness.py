"""The robustness matrix: awkward inputs and failures, one short test per case.

Every case ends in a clear error (the message names the file or folder and says what
to do) or in a documented, correct behaviour, and no case loses outputs written before.
``test_data.py::x`` means the case is tested there, ``x`` here.

input / event                      behaviour
    → tests

truncated or corrupt image         ImageLoadError naming the file: "truncated or corrupt"
    → test_truncated_files_are_refused, test_data.py::test_truncated_jpeg
zero-byte file                     ImageLoadError: "... is empty (0 bytes)"
    → test_data.py::test_zero_byte_file
text file named .jpg               ImageLoadError: "... is not an image Pillow can read"
    → test_data.py::test_text_file_named_jpg
unreadable file, command line      exit 2, message names the file, earlier outputs untouched
    → test_cli_keeps_earlier_outputs_when_a_file_is_bad
notes.txt in the folder            skipped with a warning naming it
    → test_non_image_files_are_skipped_with_a_warning
.DS_Store, sub-folders             skipped silently
    → test_non_image_files_are_skipped_with_a_warning
only non-image files               warning, then CollectionError "No images found in ..."
    → test_folder_with_only_non_images
grayscale, palette, RGBA, 16-bit   read as displayed: RGBA on white, 16 bit scaled by 1/257
    → test_image_modes_are_read_as_displayed
EXIF-rotated JPEG                  segmented upright: masks line up with the displayed image
    → test_exif_rotated_jpeg_masks_follow_the_displayed_image
1x1 image                          no instances: masks (0, 1, 1)
    → test_one_pixel_image_gives_no_instances
declares 20000x20000 pixels        ImageLoadError "... decompression bomb", nothing decoded
    → test_decompression_bomb_in_a_folder
32x20 and 40x600 images            segmented at their own size
    → test_tiny_and_elongated_images
any of these, saved                one instance PNG per image at its own size, COCO sizes
    → test_every_awkward_image_is_segmented_at_its_own_size
one image                          CollectionError "... needs at least 2 images ..."
    → test_data.py::test_single_image_folder
empty folder                       CollectionError "No images found in ..."
    → test_data.py::test_empty_folder_says_which_extensions
duplicate images                   work: identical masks and scores
    → test_duplicate_images_get_identical_instances
constant grey image                works, nothing NaN; its instances score lowest
    → test_constant_grey_image
NaN loss or NaN gradient           TrainingDivergedError; the last good checkpoint is kept
    → test_nan_keeps_the_last_good_checkpoint
interrupted training               resume=True ends exactly like an uninterrupted run
    → test_train.py::test_same_seed_same_result_and_resume_equals_uninterrupted, test_interrupted_checkpoint_write
unwritable output folder           PermissionError naming it (command line: exit 2), no writes
    → test_unwritable_output_folder (not as root)
output path is a file              NotADirectoryError naming it (command line: exit 2)
    → test_output_path_blocked_by_a_file
failure while writing a file       the previous file stays whole, no temporary file remains
    → test_failed_write_keeps_the_previous_file
same seed and inputs, CPU          identical masks, scores, peaks, maps and loss history
    → test_same_seed_gives_identical_results
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cosegkit import atomic
from cosegkit.__main__ import main
from cosegkit.config import preset
from cosegkit.data import CollectionError, ImageLoadError, load_collection
from cosegkit.datasets import synthetic_collection
from cosegkit.pipeline import cosegment
from cosegkit.train import TrainingDivergedError, fit

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A 2×2 PNG whose header claims ``width × height`` (CRC fixed): a decompression bomb without the memory."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (hidden ones too) → its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def temporary_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------- one folder of awkward files, one pipeline run

BASE = synthetic_collection(n_images=6, size=(64, 96), instances=(1, 1), seed=3)  # one red object per image
LONG = synthetic_collection(n_images=2, size=(40, 600), instances=(2, 2), seed=5)


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    """A folder holding every kind of awkward file, run once through ``cosegment`` (tiny, 1 epoch).

    Returns (collection, result, warnings raised while loading, output folder of ``Result.save``)."""
    folder = tmp_path_factory.mktemp("awkward")
    for i in range(3):
        Image.fromarray(BASE[i]).save(folder / f"s{i}.png")
    shutil.copy(folder / "s0.png", folder / "s0_copy.png")  # a byte-identical duplicate
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": store the image turned counter-clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(BASE[3], 1))).save(folder / "exif.jpg", exif=exif, quality=95)
    Image.fromarray(BASE[4]).convert("L").save(folder / "gray.png")
    rgba = np.dstack([BASE[5], np.full((64, 96), 255, np.uint8)])
    rgba[:6, :, 3] = 0  # a transparent band on top
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(BASE[0]).convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(folder / "palette.png")
    Image.fromarray(BASE[1][..., 0].astype(np.uint16) * 257).save(folder / "deep16.png")  # mode I;16
    Image.fromarray(BASE[2]).resize((32, 20), Image.Resampling.BILINEAR).save(folder / "small.png")  # W 32, H 20
    Image.fromarray(LONG[0]).save(folder / "long.png")  # H 40, W 600
    Image.fromarray(np.full((64, 96, 3), 128, np.uint8)).save(folder / "grey.png")
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(folder / "pixel.png")
    (folder / "notes.txt").write_text("shot on a Tuesday")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "thumbnails").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collection = load_collection(folder)
    result = cosegment(collection, preset("tiny", epochs=1))
    out = tmp_path_factory.mktemp("awkward_out")
    result.save(out)
    return collection, result, [str(w.message) for w in caught], out


def image_result(awkward, name):
    collection, result, _, _ = awkward
    return result[collection.names.index(name)]


def test_non_image_files_are_skipped_with_a_warning(awkward):
    collection, _, messages, _ = awkward
    assert collection.names == [
        "deep16",
        "exif",
        "gray",
        "grey",
        "long",
        "palette",
        "pixel",
        "rgba",
        "s0",
        "s0_copy",
        "s1",
        "s2",
        "small",
    ]
    skipped = [m for m in messages if "non-image" in m]
    assert len(skipped) == 1 and "notes.txt" in skipped[0]
    assert ".DS_Store" not in skipped[0] and "thumbnails" not in skipped[0]


def test_every_awkward_image_is_segmented_at_its_own_size(awkward):
    collection, result, _, out = awkward
    for r, (h, w) in zip(result.images, collection.sizes):
        assert r.masks.dtype == bool and r.masks.shape[1:] == (h, w), r.name
        assert r.saliency.shape == (h, w) and np.isfinite(r.saliency).all()
        assert 0 <= r.saliency.min() <= r.saliency.max() <= 1
        assert np.isfinite(r.scores).all() and np.all(np.diff(r.scores) <= 0), r.name
        assert np.isfinite(r.heatmaps).all(), r.name
    for r, (h, w), path in zip(result.images, collection.sizes, collection.paths):
        assert np.asarray(Image.open(out / f"{path.name}_instances.png")).shape == (h, w), r.name  # Result.save
        assert (out / f"{path.name}_overlay.png").exists()
    coco = json.loads((out / "instances_images.json").read_text())["images"]
    assert [(i["height"], i["width"]) for i in coco] == collection.sizes


def test_image_modes_are_read_as_displayed(awkward):
    gray = image_result(awkward, "gray").image
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    deep = image_result(awkward, "deep16").image
    assert np.array_equal(deep[..., 0], BASE[1][..., 0])  # v·257 read back as round(v·257 / 257) = v
    rgba = image_result(awkward, "rgba").image
    assert np.all(rgba[:6] == 255)  # transparent: white
    assert np.array_equal(rgba[6:], BASE[5][6:])  # opaque: unchanged
    palette = image_result(awkward, "palette").image
    assert palette.shape == (64, 96, 3) and np.abs(palette.astype(int) - BASE[0]).mean() < 10  # 32 colours


def test_exif_rotated_jpeg_masks_follow_the_displayed_image(awkward):
    collection, _, _, _ = awkward
    with Image.open(collection.paths[collection.names.index("exif")]) as stored:
        assert stored.size == (64, 96)  # stored portrait (W 64, H 96) ...
    r = image_result(awkward, "exif")
    assert r.image.shape == (64, 96, 3) and r.masks.shape[1:] == (64, 96)  # ... segmented landscape, as displayed
    assert np.abs(r.image.astype(int) - BASE[3]).mean() < 6  # the displayed pixels (JPEG-close), not a rotation
    red_object = BASE.gt_masks[3][0]
    best = r.masks[0]
    assert (best & red_object).sum() >= 0.8 * best.sum()  # the best instance lies on the red object
    assert r.saliency[red_object].mean() >= 2 * r.saliency[~red_object].mean()


def test_tiny_and_elongated_images(awkward):
    small, long = image_result(awkward, "small"), image_result(awkward, "long")
    assert small.masks.shape[1:] == (20, 32) and len(small.masks) >= 1
    assert long.masks.shape[1:] == (40, 600) and len(long.masks) >= 1
    # the long image's instances are drawn on its proposals at full width, not on a squashed square
    assert long.proposals.shape[1] / long.proposals.shape[0] == pytest.approx(600 / 40, rel=0.05)


def test_one_pixel_image_gives_no_instances(awkward):
    r = image_result(awkward, "pixel")
    assert r.masks.shape == (0, 1, 1) and r.scores.shape == (0,)
    assert r.saliency.shape == (1, 1) and np.isfinite(r.saliency).all()


def test_duplicate_images_get_identical_instances(awkward):
    a, b = image_result(awkward, "s0"), image_result(awkward, "s0_copy")
    assert len(a.masks) >= 1
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)
    assert np.array_equal(a.saliency, b.saliency)


def test_constant_grey_image(awkward):
    collection, result, _, _ = awkward
    grey = image_result(awkward, "grey")
    prior = result.fit.priors[collection.names.index("grey")]
    assert torch.isfinite(prior).all()
    assert np.isfinite(grey.saliency).all() and np.isfinite(grey.heatmaps).all() and np.isfinite(grey.scores).all()
    assert all(np.isfinite(h["total"]) for h in result.fit.history)
    with_objects = [r.scores[0] for r in result.images if r.name not in {"grey", "pixel"}]
    assert len(grey.scores) == 0 or grey.scores[0] < min(with_objects)  # nothing there: lowest score of all


# --------------------------------------------------------------------------- files that cannot be read


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"])
def test_truncated_files_are_refused(tmp_path, fmt):
    buffer = io.BytesIO()
    Image.fromarray(BASE[0]).save(buffer, format=fmt)
    (tmp_path / f"cut.{fmt.lower()}").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    Image.fromarray(BASE[1]).save(tmp_path / "whole.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own "Truncated File Read" for TIFF
        with pytest.raises(ImageLoadError, match=r"cut\..*truncated or corrupt.*remove it from the folder"):
            load_collection(tmp_path)


def test_decompression_bomb_in_a_folder(tmp_path):
    for i in range(2):
        Image.fromarray(BASE[i]).save(tmp_path / f"s{i}.png")
    png_declaring(tmp_path / "bomb.png", 20000, 20000)  # 400 MP declared, 70 bytes on disk
    assert (tmp_path / "bomb.png").stat().st_size < 200
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*decompression bomb.*Downscale"):
        load_collection(tmp_path)


def test_folder_with_only_non_images(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.warns(UserWarning, match="notes.txt"), pytest.raises(CollectionError, match="No images found"):
        load_collection(tmp_path)


def test_cli_keeps_earlier_outputs_when_a_file_is_bad(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(BASE[i]).save(images / f"s{i}.png")
    (images / "s3.jpg").write_bytes((images / "s0.png").read_bytes()[:100])  # truncated
    out = tmp_path / "out"
    out.mkdir()
    for name in ("summary.json", "instances.json", "checkpoint.pt", "s0_instances.png"):
        (out / name).write_bytes(f"earlier {name}".encode())
    before = snapshot(out)
    assert main(["segment", str(images), "--out", str(out), "--preset", "tiny", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cosegkit: error" in err and "s3.jpg" in err and "remove it from the folder" in err
    assert snapshot(out) == before


# ------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def six():
    return synthetic_collection(n_images=6, size=(64, 80), seed=0)  # one batch of 6 per epoch


@pytest.mark.parametrize("poison", ["weights", "gradient"])
def test_nan_keeps_the_last_good_checkpoint(six, tmp_path, poison):
    """After epoch 1 the head is poisoned: NaN weights (→ NaN loss) or a NaN gradient (finite loss)."""
    config = preset("tiny", epochs=3, image_size=64)
    ckpt = tmp_path / "run.pt"
    good = {}

    def poison_after_first_epoch(epoch, record, net):
        if epoch == 0:
            good["head.weight"] = net.head.weight.detach().clone()
            if poison == "weights":
                with torch.no_grad():
                    net.head.weight.fill_(float("nan"))
            else:
                net.head.weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))

    with pytest.raises(TrainingDivergedError) as error:
        fit(six, config, checkpoint=ckpt, callback=poison_after_first_epoch)
    message = str(error.value)
    assert "diverged at epoch 2" in message and "Lower the learning rates" in message
    assert ("loss is not finite" if poison == "weights" else "gradient of head.weight is not finite") in message
    assert f"after epoch 1) is kept at {ckpt}" in message
    state = torch.load(ckpt, weights_only=False)
    assert state["epoch"] == 0 and len(state["history"]) == 1
    assert all(torch.isfinite(v).all() for v in state["trainable"].values())
    assert torch.equal(state["trainable"]["head.weight"], good["head.weight"])
    assert not temporary_files(tmp_path)


def test_interrupted_checkpoint_write(six, tmp_path, monkeypatch):
    """Ctrl-C while the 2nd checkpoint is being written: the 1st survives whole, and resuming from it
    ends exactly like an uninterrupted run (bit for bit)."""
    config = preset("tiny", epochs=2, image_size=64)
    uninterrupted = fit(six, config)
    ckpt = tmp_path / "run.pt"
    real_save, calls = torch.save, []

    def save_then_interrupt(obj, path):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(six, config, checkpoint=ckpt)
    monkeypatch.undo()
    assert not temporary_files(tmp_path)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 0
    resumed = fit(six, config, checkpoint=ckpt, resume=True)
    assert resumed.history == uninterrupted.history
    for (key, a), b in zip(uninterrupted.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), key


# ------------------------------------------------------------------------ determinism and outputs


@pytest.fixture(scope="module")
def twice():
    """The same small collection and seed run twice."""
    collection = synthetic_collection(n_images=4, size=(64, 80), seed=0)
    return [cosegment(collection, preset("tiny", epochs=2)) for _ in range(2)]


def test_same_seed_gives_identical_results(twice):
    a, b = twice
    assert a.n_instances > 0
    assert a.fit.history == b.fit.history
    for ra, rb in zip(a.images, b.images):
        for field in ("masks", "scores", "peaks", "peak_values", "logits", "saliency", "heatmaps", "instance_peaks"):
            assert np.array_equal(getattr(ra, field), getattr(rb, field)), (ra.name, field)


@pytest.mark.skipif(IS_ROOT, reason="root can write into a read-only folder")
def test_unwritable_output_folder(twice, tmp_path, capsys):
    result = twice[0]
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "instances.json").write_text("earlier")
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="locked.*not writable.*another output folder"):
            result.save(locked, overlays=False)
        with pytest.raises(PermissionError, match="locked.*not writable"):
            result.to_coco(locked / "instances.json")
        with pytest.raises(PermissionError, match=r"Cannot create the folder .*locked/sub.*permission denied"):
            result.to_coco(locked / "sub" / "instances.json")
        images = tmp_path / "images"
        images.mkdir()
        for i in range(2):
            Image.fromarray(BASE[i]).save(images / f"s{i}.png")
        for out in (locked, locked / "sub"):
            assert main(["segment", str(images), "--out", str(out), "--preset", "tiny", "--quiet"]) == 2
            assert "locked" in capsys.readouterr().err
        assert snapshot(locked) == {"instances.json": b"earlier"}  # nothing written, nothing lost
    finally:
        locked.chmod(0o700)


def test_output_path_blocked_by_a_file(twice, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    with pytest.raises(NotADirectoryError, match="results': it is a file, not a folder"):
        twice[0].to_coco(blocker / "instances.json")
    with pytest.raises(NotADirectoryError, match="results/sub': part of its path is a file"):
        twice[0].to_coco(blocker / "sub" / "instances.json")
    with pytest.raises(NotADirectoryError, match="results': it is a file, not a folder"):
        twice[0].save(blocker, overlays=False)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(BASE[i]).save(images / f"s{i}.png")
    assert main(["segment", str(images), "--out", str(blocker), "--preset", "tiny", "--quiet"]) == 2
    assert "results': it is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "a file, not a folder"


def test_failed_write_keeps_the_previous_file(twice, tmp_path, monkeypatch):
    """A full disk in the middle of writing: the old file stays whole and no temporary file remains."""
    result = twice[0]
    result.save(tmp_path, overlays=False)
    before = snapshot(tmp_path)

    def half_then_disk_full(self, data, *args, **kwargs):
        with open(self, "w") as file:
            file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", half_then_disk_full)
        with pytest.raises(OSError, match="No space left"):
            result.to_coco(tmp_path / "instances.json")

    def png_half_then_fail(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half")
        raise OSError(errno.ENOSPC, "No space left on device")

    changed = result.rerank(nms_iou=0.0, peak_threshold=1e9)  # would write empty masks
    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", png_half_then_fail)
        with pytest.raises(OSError, match="No space left"):
            changed.save(tmp_path, overlays=False)
    assert snapshot(tmp_path) == before
    assert not temporary_files(tmp_path)


def test_written_files_have_ordinary_permissions(tmp_path):
    """Atomic writes go through a private temporary file, but the result is readable like any new file."""
    atomic.write_text(tmp_path / "a.json", "{}")
    with open(tmp_path / "b.json", "w") as f:
        f.write("{}")
    assert (tmp_path / "a.json").stat().st_mode == (tmp_path / "b.json").stat().st_mode
