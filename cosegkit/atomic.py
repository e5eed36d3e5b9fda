"""Atomic file writes: a file is either its old self or completely new, never half written.

Every output is first written to a hidden temporary file beside its target
(``.name.XXXX.tmp``), which then replaces the target in one ``os.replace``. If
writing fails or is interrupted (an exception, Ctrl-C), the temporary file is
removed and the target keeps its previous content.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) if needed and check that new files can be written in it.

    Raises ``NotADirectoryError`` when ``folder`` or one of its parents is a file and
    ``PermissionError`` when it cannot be created or written to; both messages name the folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"Cannot write into '{folder}': it is a file, not a folder. Choose another output folder."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise PermissionError(
            f"Cannot create the folder '{folder}': permission denied. "
            "Choose another output folder, or change the permissions of its parent."
        ) from None
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(
            f"Cannot create the folder '{folder}': part of its path is a file, not a folder. "
            "Choose another output folder."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"Cannot write to '{folder}': the folder is not writable. "
            "Choose another output folder, or change its permissions."
        )
    return folder


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The new file gets the permissions an ordinary ``open(path, "w")`` would give it
    (``0o666`` less the umask), not the owner-only ones of a temporary file.

    Example::

        with atomic_path("out/result.json") as tmp:
            tmp.write_text("{}")
    """
    path = Path(path)
    ensure_writable_folder(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically; returns ``path``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
