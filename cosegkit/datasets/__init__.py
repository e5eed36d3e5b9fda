"""Ready-made collections with instance ground truth, for learning, tests and benchmarks.

Every loader returns a ``cosegkit.data.Collection`` whose ``gt_masks`` are at
the original image resolution (evaluation happens there).

    synthetic_collection   procedural shapes on textured backgrounds (exact ground truth, no files)
    load_pennfudan         Penn-Fudan pedestrians (PNGImages/ + PedMasks/)
    load_via, load_balloon VIA polygon annotations (e.g. the balloon data set)
    load_coco              one category of a COCO instances file (polygons and RLE)
    build_collections      the paper's COCO-VOC / COCO-NONVOC collections from a COCO file
    load_voc_instances     PASCAL VOC 2012 (SegmentationObject PNGs) or SBD (inst/*.mat)
    load_collection        a folder of images without ground truth (from cosegkit.data)
    download_*             one-time downloads into a cache folder (Penn-Fudan, balloon, COCO annotations)
    protocol_split_of      the fixed tune / report split of an image (loaders: protocol_split="tune" | "report")

Real data sets are looked up under ``data_root()``.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "COSEGKIT_DATA"


def _candidate_roots() -> list[Path]:
    """Where data sets are looked for, in order (the environment variable is handled separately)."""
    repo_root = Path(__file__).resolve().parents[2]
    return [Path.cwd() / ".." / "shared" / "data", repo_root / ".." / "shared" / "data"]


def data_root(name: str | None = None) -> Path:
    """The folder holding the data sets, or its sub-folder ``name`` (e.g. ``"PennFudanPed"``).

    Looked up in this order: ``$COSEGKIT_DATA``; ``../shared/data`` relative to
    the current directory; ``../shared/data`` next to the repository. Raises
    ``FileNotFoundError`` saying to set ``COSEGKIT_DATA`` when nothing is found.
    """
    from_env = os.environ.get(DATA_ENV)
    if from_env:
        roots = [Path(from_env).expanduser()]
        where = f"${DATA_ENV} = '{from_env}'"
    else:
        roots = _candidate_roots()
        where = "the default places (" + ", ".join(f"'{r}'" for r in roots) + ")"
    for root in roots:
        folder = root / name if name else root
        if folder.is_dir():
            return folder.resolve()
    what = f"data set folder '{name}'" if name else "data folder"
    raise FileNotFoundError(
        f"Could not find the {what} in {where}. Download the data set and set the environment variable "
        f"{DATA_ENV} to the folder that contains it (e.g. `export {DATA_ENV}=/path/to/data`), or pass root=."
    )


from ..data import load_collection  # noqa: E402
from .coco import (  # noqa: E402
    COCO_VOC_CATEGORIES,
    CocoCollections,
    CollectionStats,
    build_collections,
    load_coco,
    merge_coco_annotations,
    read_coco,
)
from .download import download_balloon, download_coco_annotations, download_pennfudan  # noqa: E402
from .pennfudan import load_pennfudan  # noqa: E402
from .protocol import PROTOCOL_SPLITS, protocol_indices, protocol_split_of  # noqa: E402
from .synthetic import synthetic_collection  # noqa: E402
from .via import load_balloon, load_via  # noqa: E402
from .voc import VOC_CLASSES, VOC_TO_COCO, load_voc_instances  # noqa: E402

__all__ = [
    "data_root",
    "load_pennfudan",
    "load_via",
    "load_balloon",
    "synthetic_collection",
    "DATA_ENV",
    "load_collection",
    "load_coco",
    "read_coco",
    "merge_coco_annotations",
    "build_collections",
    "CocoCollections",
    "CollectionStats",
    "COCO_VOC_CATEGORIES",
    "load_voc_instances",
    "VOC_CLASSES",
    "VOC_TO_COCO",
    "download_pennfudan",
    "download_balloon",
    "download_coco_annotations",
    "PROTOCOL_SPLITS",
    "protocol_indices",
    "protocol_split_of",
]
