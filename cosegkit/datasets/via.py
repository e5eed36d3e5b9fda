"""VIA (VGG Image Annotator) polygon projects, e.g. the balloon data set.

A VIA 1.x project file maps a key to one image entry; VIA 2.x wraps the same
entries in ``"_via_img_metadata"``::

    {"34020010494_e5cb88e1c4_k.jpg1115004": {
        "filename": "34020010494_e5cb88e1c4_k.jpg",
        "regions": {"0": {"shape_attributes": {"name": "polygon",
                                               "all_points_x": [...], "all_points_y": [...]}}}}}

``regions`` may be a dict (VIA 1.x) or a list (VIA 2.x). Each region is one
instance, rasterised at the original image resolution.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from skimage import draw

from ..data import Collection, load_image
from .protocol import protocol_indices


def load_via(
    json_path: str | Path,
    image_dir: str | Path | None = None,
    category: str = "balloon",
    max_images: int | None = None,
    protocol_split: str | None = None,
) -> Collection:
    """A collection from a VIA project file; images sorted by file name.

    Args:
        json_path: the VIA project / export file (``via_region_data.json``).
        image_dir: folder of the images; default the json file's folder.
        category: display name of the object.
        max_images: keep only the first ``max_images`` images (of the split).
        protocol_split: ``"tune"``, ``"report"`` (about half each, by a hash of the file name) or None (all);
            see :mod:`cosegkit.datasets.protocol`.

    Supported region shapes: polygon, rect, circle, ellipse (others are
    skipped with a warning). ``gt_masks[n]`` is ``(K_n, H_n, W_n) bool``.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"VIA annotation file not found: '{json_path}'.")
    image_dir = json_path.parent if image_dir is None else Path(image_dir)
    with open(json_path) as f:
        project = json.load(f)
    entries = project.get("_via_img_metadata", project)
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and "filename" in e for e in entries.values()):
        raise ValueError(
            f"'{json_path}' does not look like a VIA project file (entries with 'filename' and 'regions')."
        )
    entries = sorted(entries.values(), key=lambda e: e["filename"])
    entries = [entries[i] for i in protocol_indices([e["filename"] for e in entries], protocol_split)]
    if max_images is not None:
        entries = entries[:max_images]
    images, masks, paths = [], [], []
    for entry in entries:
        path = image_dir / entry["filename"]
        if not path.is_file():
            raise FileNotFoundError(
                f"Image '{entry['filename']}' referenced by '{json_path}' is not in '{image_dir}'. "
                "Put the images next to the json file or pass image_dir=."
            )
        image = load_image(path)
        regions = entry.get("regions") or []
        regions = list(regions.values()) if isinstance(regions, dict) else list(regions)
        shapes = [region_mask(r["shape_attributes"], image.shape[:2], entry["filename"]) for r in regions]
        shapes = [m for m in shapes if m is not None]
        masks.append(np.stack(shapes) if shapes else np.zeros((0,) + image.shape[:2], bool))
        images.append(image)
        paths.append(path)
    names = [p.stem for p in paths]
    return Collection(images=images, names=names, paths=paths, gt_masks=masks, category=category)


def region_mask(shape: dict, size: tuple[int, int], filename: str = "") -> np.ndarray | None:
    """One VIA ``shape_attributes`` dict → ``(H, W) bool`` mask (``None`` for an unsupported shape)."""
    kind = shape.get("name")
    mask = np.zeros(size, bool)
    if kind == "polygon":
        rows, cols = draw.polygon(shape["all_points_y"], shape["all_points_x"], shape=size)
    elif kind == "rect":
        x, y, w, h = (shape[k] for k in ("x", "y", "width", "height"))
        rows, cols = draw.polygon([y, y, y + h, y + h], [x, x + w, x + w, x], shape=size)
    elif kind == "circle":
        rows, cols = draw.disk((shape["cy"], shape["cx"]), shape["r"], shape=size)
    elif kind == "ellipse":
        rows, cols = draw.ellipse(
            shape["cy"], shape["cx"], shape["ry"], shape["rx"], shape=size, rotation=-float(shape.get("theta", 0.0))
        )
    else:
        warnings.warn(f"Skipping a VIA region of unsupported shape {kind!r} in '{filename}'.", stacklevel=2)
        return None
    mask[rows, cols] = True
    return mask


def load_balloon(
    root: str | Path | None = None,
    split: str = "train",
    max_images: int | None = None,
    protocol_split: str | None = None,
) -> Collection:
    """The balloon data set (VIA polygons): ``root/split/via_region_data.json`` with its JPEGs.

    ``root`` defaults to ``data_root("balloon")``. ``split`` is the data set's folder (``"train"``, ``"val"``);
    ``protocol_split`` (``"tune"``, ``"report"``, None) halves it, see :mod:`cosegkit.datasets.protocol`.
    """
    if root is None:
        from . import data_root

        root = data_root("balloon")
    json_path = Path(root) / split / "via_region_data.json"
    if not json_path.is_file():
        raise FileNotFoundError(
            f"'{json_path}' not found; expected the balloon layout root/{split}/via_region_data.json."
        )
    return load_via(json_path, category="balloon", max_images=max_images, protocol_split=protocol_split)
