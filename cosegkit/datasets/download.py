"""Download helpers for datasets with a stable public address (used on Colab; tests never download)."""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

PENNFUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"


def cache_dir() -> Path:
    """Where downloads are kept: ``$COSEGKIT_CACHE`` or ``~/.cache/cosegkit``."""
    return Path(os.environ.get("COSEGKIT_CACHE", Path.home() / ".cache" / "cosegkit"))


def download_pennfudan(url: str = PENNFUDAN_URL, folder: str | Path | None = None) -> Path:
    """Download and unpack Penn-Fudan once (≈ 50 MB); returns the ``PennFudanPed`` folder."""
    folder = Path(folder) if folder is not None else cache_dir()
    target = folder / "PennFudanPed"
    if (target / "PNGImages").is_dir():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "PennFudanPed.zip.part"
    print(f"downloading {url} …")
    with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as f:
        shutil.copyfileobj(response, f)
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)
    archive.unlink()
    if not (target / "PNGImages").is_dir():
        raise RuntimeError(f"The archive from {url} did not contain PennFudanPed/PNGImages.")
    return target
