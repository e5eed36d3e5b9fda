"""Penn-Fudan pedestrians: 170 street photos, 423 people, instance masks.

Layout (as distributed)::

    PennFudanPed/
      PNGImages/FudanPed00001.png ...
      PedMasks/FudanPed00001_mask.png ...   0 = background, k = person k
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..data import Collection, image_files, load_image, masks_from_label_map
from .protocol import protocol_indices


def load_pennfudan(
    root: str | Path | None = None, max_images: int | None = None, protocol_split: str | None = None
) -> Collection:
    """The Penn-Fudan collection (category ``"person"``), images sorted by name.

    Args:
        root: the ``PennFudanPed`` folder (or a folder containing it);
            default ``data_root("PennFudanPed")``.
        max_images: keep only the first ``max_images`` images (of the split).
        protocol_split: ``"tune"`` (the ``FudanPed`` images), ``"report"`` (the ``PennPed`` images) or None
            (all); see :mod:`cosegkit.datasets.protocol`.

    Returns a ``Collection`` whose ``gt_masks[n]`` is ``(K_n, H_n, W_n) bool``,
    one mask per person, ordered by mask value.
    """
    root = _find_root(root)
    paths = image_files(root / "PNGImages")
    paths = [paths[i] for i in protocol_indices([p.name for p in paths], protocol_split, rule="prefix")]
    if max_images is not None:
        paths = paths[:max_images]
    images, masks = [], []
    for path in paths:
        mask_path = root / "PedMasks" / f"{path.stem}_mask.png"
        if not mask_path.is_file():
            raise FileNotFoundError(
                f"Mask '{mask_path}' for image '{path.name}' is missing; the Penn-Fudan folder "
                "looks incomplete. Download the data set again."
            )
        images.append(load_image(path))
        with Image.open(mask_path) as mask_image:
            masks.append(masks_from_label_map(np.asarray(mask_image)))
    return Collection(images=images, names=[p.stem for p in paths], paths=paths, gt_masks=masks, category="person")


def _find_root(root: str | Path | None) -> Path:
    if root is None:
        from . import data_root

        root = data_root("PennFudanPed")
    root = Path(root)
    if not (root / "PNGImages").is_dir() and (root / "PennFudanPed" / "PNGImages").is_dir():
        root = root / "PennFudanPed"
    if not (root / "PNGImages").is_dir() or not (root / "PedMasks").is_dir():
        raise FileNotFoundError(f"'{root}' is not a Penn-Fudan folder: expected sub-folders PNGImages/ and PedMasks/.")
    return root
