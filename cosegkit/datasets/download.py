"""Download helpers for datasets with a stable public address (used on Colab; tests never download).

Each helper downloads a zip archive once into a cache folder, unpacks it and
returns the unpacked folder; a later call finds the folder and returns at
once, without touching the network. The archive is written as ``NAME.part``
and renamed only when complete, so an interrupted download is never mistaken
for a finished one.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

PENNFUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
BALLOON_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.1/balloon_dataset.zip"
COCO_ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"


class DownloadError(RuntimeError):
    """A data set could not be downloaded or unpacked."""


def cache_dir() -> Path:
    """Where downloads are kept: ``$COSEGKIT_CACHE`` or ``~/.cache/cosegkit``."""
    return Path(os.environ.get("COSEGKIT_CACHE", Path.home() / ".cache" / "cosegkit"))


def download_pennfudan(url: str = PENNFUDAN_URL, folder: str | Path | None = None) -> Path:
    """Download and unpack Penn-Fudan once (≈ 50 MB); returns the ``PennFudanPed`` folder."""
    folder = Path(folder) if folder is not None else cache_dir()
    return _download_and_unpack(
        url, folder, "PennFudanPed", lambda target: (target / "PNGImages").is_dir(), "PennFudanPed/PNGImages"
    )


def download_balloon(url: str = BALLOON_URL, folder: str | Path | None = None) -> Path:
    """Download and unpack the balloon data set once (≈ 40 MB); returns the ``balloon`` folder.

    It holds ``train/`` and ``val/``, each with JPEGs and a VIA file
    ``via_region_data.json``; read it with ``load_balloon(returned_folder)``.
    """
    folder = Path(folder) if folder is not None else cache_dir()
    return _download_and_unpack(
        url,
        folder,
        "balloon",
        lambda target: (target / "train" / "via_region_data.json").is_file(),
        "balloon/train/via_region_data.json",
    )


def download_coco_annotations(folder: str | Path | None = None, url: str = COCO_ANNOTATIONS_URL) -> Path:
    """Download and unpack the COCO 2017 train+val annotations once (≈ 250 MB); returns the ``annotations`` folder.

    It holds ``instances_train2017.json`` and ``instances_val2017.json``
    (used by ``build_collections``). Images are separate downloads
    (``http://images.cocodataset.org/zips/val2017.zip``, ``train2017.zip``).
    """
    folder = Path(folder) if folder is not None else cache_dir() / "coco"
    return _download_and_unpack(
        url,
        folder,
        "annotations",
        lambda target: all((target / f"instances_{s}2017.json").is_file() for s in ("train", "val")),
        "annotations/instances_train2017.json and instances_val2017.json",
    )


def _download_and_unpack(url: str, folder: Path, name: str, is_complete: Callable[[Path], bool], expected: str) -> Path:
    """``folder / name`` once ``is_complete`` says so; else download ``url`` (a zip) and unpack it into ``folder``."""
    target = folder / name
    if is_complete(target):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{name}.zip"
    partial = folder / f"{name}.zip.part"
    if not archive.is_file():
        print(f"downloading {url} …")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, OSError) as error:
            partial.unlink(missing_ok=True)
            raise DownloadError(
                f"Could not download {url} ({error}). Check the internet connection, or download the "
                f"file by hand and unpack it into '{folder}' (expected: {expected})."
            ) from error
        partial.rename(archive)
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(folder)
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DownloadError(
            f"The file downloaded from {url} is not a valid zip archive ({error}); it was removed. "
            "Run the download again."
        ) from error
    archive.unlink()
    if not is_complete(target):
        raise DownloadError(f"The archive from {url} did not contain {expected}; unpacked into '{folder}'.")
    return target
