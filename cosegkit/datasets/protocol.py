"""Fixed tune / report splits of the evaluation collections: choose settings on one, report on the other.

Every default of a preset, every benchmark threshold and every setting tried is chosen on *tune*
images; the tables the README quotes are measured on *report* images. The split is a rule on the
image's file name alone, so it does not depend on which other images are present (``max_images``,
a COCO category's selection) and never changes:

- Penn-Fudan: ``FudanPed*`` images tune (74 images), ``PennPed*`` images report (96); two
  different campuses, so the settings also have to carry over to another place.
- every other collection (balloon, each category of a COCO file such as ``coco_val_subset``):
  ``"tune"`` when the first byte of the SHA-256 of the file name (without folders, with the
  extension) is even, ``"report"`` when it is odd — about half each (balloon 33 / 28; in coco_val_subset,
  images with ≥ 2 instances of the category:
  36 / 30 person, 18 / 14 car, 16 / 16 bottle, 11 / 16 cup, 14 / 11 chair, 9 / 12 bowl). An image in
  several COCO collections is on the same side in all of them.

The loaders take ``protocol_split="tune" | "report" | None`` (None: every image)::

    >>> protocol_split_of("FudanPed00001.png", "prefix")
    'tune'
    >>> protocol_split_of("PennPed00001.png", "prefix")
    'report'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

PROTOCOL_SPLITS = ("tune", "report")
RULES = ("hash", "prefix")
PREFIXES = {"FudanPed": "tune", "PennPed": "report"}  # Penn-Fudan: the two campuses


def protocol_split_of(file_name: str | Path, rule: str = "hash") -> str:
    """``"tune"`` or ``"report"`` for one image file (see the module docstring).

    rule: ``"prefix"`` (Penn-Fudan: by the ``FudanPed`` / ``PennPed`` prefix) or ``"hash"`` (any other
    collection: the parity of the first byte of SHA-256 of the file name, without folders)."""
    name = Path(file_name).name
    if rule == "prefix":
        for prefix, split in PREFIXES.items():
            if name.startswith(prefix):
                return split
        raise ValueError(f"'{name}' is not a Penn-Fudan image name (FudanPed… or PennPed…); use rule='hash'.")
    if rule == "hash":
        return PROTOCOL_SPLITS[hashlib.sha256(name.encode("utf-8")).digest()[0] % 2]
    raise ValueError(f"Unknown split rule {rule!r}; choose one of {RULES}.")


def protocol_indices(file_names: Sequence[str | Path], split: str | None, rule: str = "hash") -> list[int]:
    """Indices of the ``file_names`` in ``split`` (``"tune"``, ``"report"``; None or ``"all"``: all), in order."""
    if split is None or split == "all":
        return list(range(len(file_names)))
    if split not in PROTOCOL_SPLITS:
        raise ValueError(f"protocol_split must be one of {PROTOCOL_SPLITS} or None (every image); got {split!r}.")
    return [i for i, name in enumerate(file_names) if protocol_split_of(name, rule) == split]
