"""COCO instance annotations: load one category as a collection, or rebuild the paper's collections.

A COCO "instances" file (``instances_val2017.json``) lists images, categories
and annotations; each annotation is one object with a ``segmentation`` that is

- a list of polygons ``[[x1, y1, x2, y2, ...], ...]`` (pixel corners: pixel
  (x, y) covers ``[x, x+1) × [y, y+1)``),
- an uncompressed RLE ``{"counts": [n0, n1, ...], "size": [H, W]}``
  (alternating runs of 0s and 1s, column by column), or
- a compressed RLE ``{"counts": "<string>", "size": [H, W]}``.

Annotations with ``"iscrowd": 1`` (always RLE) mark a *group* of objects too
dense to separate ("a crowd of people"). The paper's collections count
instances, so crowd regions are skipped by default: they are neither
instances nor other categories. Pass ``include_crowd=True`` to keep each crowd
region as one more instance.

Decoding uses ``pycocotools.mask``; masks are ``(H, W) bool`` at the size the
annotation file gives for the image, which must equal the image file's size::

    from cosegkit.datasets import build_collections, load_coco

    dogs = load_coco("coco/annotations/instances_val2017.json", "coco/val2017", category="dog")
    built = build_collections("coco/annotations/instances_val2017.json", "coco/val2017")  # prints Table-1 statistics
    built["dog"]         # image ids of the "dog" collection
    built.load("dog")    # its Collection (images are read only now)
"""

from __future__ import annotations

import json
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ..data import Collection, CollectionError, ImageLoadError, _to_rgb_array, load_image
from .protocol import protocol_indices
from .voc import VOC_TO_COCO

#: COCO category names of the 20 PASCAL VOC classes ("COCO-VOC"); every other COCO category is "COCO-NONVOC".
COCO_VOC_CATEGORIES = frozenset(VOC_TO_COCO.values())

SPLITS = ("all", "voc", "nonvoc")


# ---------------------------------------------------------------- annotation file


@dataclass
class CocoAnnotations:
    """A COCO instances file indexed by image.

    Attributes:
        images: image id → its entry (``file_name``, ``height``, ``width``, ...).
        categories: category id → name, in id order.
        by_image: image id → its annotations, in annotation-id order.
        source: where it came from (for messages).
        folder: the json file's folder (used to guess the image folder), if any.
    """

    images: dict[int, dict]
    categories: dict[int, str]
    by_image: dict[int, list[dict]]
    source: str = "<dict>"
    folder: Path | None = None

    def category_id(self, category: str | int) -> int:
        """A category name (any case) or id → its id; ``CollectionError`` listing the categories otherwise."""
        if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
            if int(category) in self.categories:
                return int(category)
        else:
            wanted = str(category).strip().lower()
            for cat_id, name in self.categories.items():
                if name.lower() == wanted:
                    return cat_id
        raise CollectionError(
            f"Category {category!r} is not in '{self.source}'. Categories (id: name): {self.describe_categories()}."
        )

    def describe_categories(self, include_crowd: bool = False) -> str:
        """``"1: person (250 images), 18: dog (3 images), ..."``: categories with annotated images."""
        counts = Counter()
        for objects in self.by_image.values():
            counts.update({a["category_id"] for a in objects if include_crowd or not a.get("iscrowd", 0)})
        parts = [f"{cat_id}: {name} ({counts[cat_id]} images)" for cat_id, name in self.categories.items()]
        return ", ".join(parts) if parts else "none"


def read_coco(annotation_json: str | Path | dict | CocoAnnotations) -> CocoAnnotations:
    """Parse a COCO instances file (a path, its loaded dict, a ``pycocotools.coco.COCO`` or a ``CocoAnnotations``)."""
    if isinstance(annotation_json, CocoAnnotations):
        return annotation_json
    source, folder = "<dict>", None
    if hasattr(annotation_json, "dataset") and isinstance(annotation_json.dataset, dict):  # pycocotools COCO
        annotation_json = annotation_json.dataset
    if isinstance(annotation_json, (str, Path)):
        path = Path(annotation_json)
        if not path.is_file():
            raise FileNotFoundError(
                f"COCO annotation file not found: '{path}'. Download it with "
                "cosegkit.datasets.download_coco_annotations() or check the path."
            )
        with open(path) as f:
            annotation_json = json.load(f)
        source, folder = str(path), path.parent
    dataset = annotation_json
    missing = [key for key in ("images", "annotations", "categories") if key not in dataset]
    if not isinstance(dataset, dict) or missing:
        raise ValueError(
            f"'{source}' is not a COCO instances file: it lacks {missing}. Use an instances_*.json "
            "file (captions and keypoint files are different formats)."
        )
    images = {int(entry["id"]): entry for entry in dataset["images"]}
    categories = {int(c["id"]): str(c["name"]) for c in sorted(dataset["categories"], key=lambda c: c["id"])}
    by_image = defaultdict(list)
    for annotation in sorted(dataset["annotations"], key=lambda a: a.get("id", 0)):
        by_image[int(annotation["image_id"])].append(annotation)
    return CocoAnnotations(images=images, categories=categories, by_image=dict(by_image), source=source, folder=folder)


def merge_coco_annotations(annotation_files: Sequence[str | Path], image_dirs: Sequence[str | Path]) -> dict:
    """Several COCO files (e.g. train2017 + val2017) as one dict whose ``file_name`` are full paths.

    ``image_dirs[i]`` is the image folder of ``annotation_files[i]``. Pass the
    result to ``load_coco`` / ``build_collections`` with ``image_dir=None``.
    Image ids must be unique across files and category ids must mean the same.
    """
    if len(annotation_files) != len(image_dirs):
        raise ValueError(
            f"Give one image folder per annotation file; got {len(annotation_files)} files and "
            f"{len(image_dirs)} folders."
        )
    merged = {"images": [], "annotations": [], "categories": []}
    categories: dict[int, str] = {}
    seen_ids: set[int] = set()
    for annotation_file, image_dir in zip(annotation_files, image_dirs):
        with open(annotation_file) as f:
            dataset = json.load(f)
        for category in dataset["categories"]:
            if categories.setdefault(category["id"], category["name"]) != category["name"]:
                raise ValueError(
                    f"Category id {category['id']} is '{categories[category['id']]}' in one file and "
                    f"'{category['name']}' in '{annotation_file}'; the files do not share categories."
                )
        ids = {entry["id"] for entry in dataset["images"]}
        if ids & seen_ids:
            raise ValueError(
                f"'{annotation_file}' repeats image ids of an earlier file (e.g. {min(ids & seen_ids)}); "
                "merge only files with disjoint images (such as train2017 and val2017)."
            )
        seen_ids |= ids
        for entry in dataset["images"]:
            merged["images"].append({**entry, "file_name": str(Path(image_dir) / entry["file_name"])})
        merged["annotations"].extend(dataset["annotations"])
    merged["categories"] = [{"id": i, "name": n} for i, n in sorted(categories.items())]
    return merged


# ---------------------------------------------------------------- masks


def annotation_mask(segmentation: list | dict, height: int, width: int, what: str = "annotation") -> np.ndarray:
    """One COCO ``segmentation`` (polygons, RLE or compressed RLE) → ``(height, width) bool``.

    Polygons with fewer than 3 points are ignored (they enclose no pixel). An
    RLE whose ``size`` differs from ``(height, width)`` raises ``CollectionError``.

    >>> annotation_mask([[1, 1, 4, 1, 4, 3, 1, 3]], 4, 5).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    if isinstance(segmentation, list):
        polygons = [list(map(float, p)) for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = [int(s) for s in segmentation["size"]]
        if size != [height, width]:
            raise CollectionError(
                f"{what} has an RLE mask of size {size[0]}×{size[1]} but its image is "
                f"{height}×{width} (H×W) in the annotation file; the file is inconsistent."
            )
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise CollectionError(
                    f"{what} has an uncompressed RLE whose runs add up to {sum(counts)} pixels, "
                    f"not {height}×{width} = {height * width}; the mask is corrupt."
                )
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise CollectionError(
            f"{what} has a segmentation of unknown form ({type(segmentation).__name__}); expected "
            "a list of polygons or an RLE dict with 'counts' and 'size'."
        )
    with warnings.catch_warnings():  # pycocotools' own numpy-2 deprecation notice, not the user's concern
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


# ---------------------------------------------------------------- one category


def load_coco(
    annotation_json: str | Path | dict | CocoAnnotations,
    image_dir: str | Path | None = None,
    category: str | int | None = None,
    max_images: int | None = None,
    require_single_category: bool = False,
    min_instances: int = 1,
    include_crowd: bool = False,
    image_ids: Iterable[int] | None = None,
    protocol_split: str | None = None,
) -> Collection:
    """The images of one COCO category with one mask per instance.

    Args:
        annotation_json: an instances file (path), its dict, or ``read_coco``'s result.
        image_dir: folder of the images. ``None``: ``file_name`` as written
            (full paths from ``merge_coco_annotations``), else guessed from the
            usual layout ``coco/annotations/instances_val2017.json`` +
            ``coco/val2017/``.
        category: a category name (``"dog"``, any case) or id (``18``).
            ``None`` is allowed when the file annotates a single category.
        max_images: keep only the first ``max_images`` selected images (by file name).
        require_single_category: keep only images with no (non-crowd)
            annotation of another category.
        min_instances: keep images with at least this many instances of ``category``.
        include_crowd: keep crowd regions as instances (default: skip them; see the module docstring).
        image_ids: consider only these image ids (default: every image in the file).
        protocol_split: ``"tune"``, ``"report"`` (about half each, by a hash of the file name, so an image is on
            the same side in every category's collection) or None (all); see :mod:`cosegkit.datasets.protocol`.
            Applied before ``max_images``.

    Returns a ``Collection`` sorted by file name; ``gt_masks[n]`` is
    ``(K_n, H_n, W_n) bool`` in annotation-id order, ``category`` the COCO name.

    Raises ``CollectionError`` when no image qualifies (listing the
    categories that exist), ``ImageLoadError`` naming a missing image file,
    and ``CollectionError`` when an image file's size differs from the size
    in the annotation file.
    """
    coco = read_coco(annotation_json)
    if min_instances < 1:
        raise ValueError(f"min_instances must be ≥ 1; got {min_instances}.")
    category_id = _choose_category(coco, category, include_crowd)
    name = coco.categories[category_id]
    ids = coco.images.keys() if image_ids is None else [int(i) for i in image_ids]
    selected = []
    for image_id in ids:
        if image_id not in coco.images:
            raise CollectionError(f"Image id {image_id} is not in '{coco.source}'.")
        annotations = _objects(coco.by_image.get(image_id, []), include_crowd)
        own = [a for a in annotations if a["category_id"] == category_id]
        if len(own) >= min_instances and (not require_single_category or len(own) == len(annotations)):
            selected.append((coco.images[image_id], own))
    selected.sort(key=lambda item: (str(item[0]["file_name"]), item[0]["id"]))
    selected = [selected[i] for i in protocol_indices([e["file_name"] for e, _ in selected], protocol_split)]
    if max_images is not None:
        selected = selected[:max_images]
    if len(selected) < 2:
        rule = " and no other category" if require_single_category else ""
        raise CollectionError(
            f"{len(selected)} image(s) in '{coco.source}' have ≥ {min_instances} instance(s) of "
            f"'{name}' (id {category_id}){rule}; a collection needs at least 2. Categories (id: name): "
            f"{coco.describe_categories(include_crowd)}."
        )
    folder = _image_folder(coco, image_dir, selected[0][0]["file_name"])
    images, paths, gt_masks = [], [], []
    for entry, annotations in selected:
        path = folder / entry["file_name"]
        image = _load_coco_image(path, entry, coco.source)
        height, width = image.shape[:2]
        masks = [
            annotation_mask(a["segmentation"], height, width, f"Annotation {a.get('id')} of '{path.name}'")
            for a in annotations
        ]
        images.append(image)
        paths.append(path)
        gt_masks.append(np.stack(masks))
    stems = [p.stem for p in paths]
    names = [s if stems.count(s) == 1 else f"{s}_{e['id']}" for s, (e, _) in zip(stems, selected)]
    return Collection(images=images, names=names, paths=paths, gt_masks=gt_masks, category=name)


def _objects(annotations: list[dict], include_crowd: bool) -> list[dict]:
    """The annotations that count as objects (crowd regions only when asked for)."""
    return [a for a in annotations if include_crowd or not a.get("iscrowd", 0)]


def _choose_category(coco: CocoAnnotations, category: str | int | None, include_crowd: bool) -> int:
    if category is not None:
        return coco.category_id(category)
    used = {a["category_id"] for anns in coco.by_image.values() for a in _objects(anns, include_crowd)}
    if len(used) == 1:
        return used.pop()
    raise CollectionError(
        f"'{coco.source}' annotates {len(used)} categories; choose one with category= (a name or "
        f"an id). Categories (id: name): {coco.describe_categories(include_crowd)}."
    )


def _image_folder(coco: CocoAnnotations, image_dir: str | Path | None, first_file: str) -> Path:
    """The folder image ``file_name`` are relative to (see ``load_coco``'s ``image_dir``)."""
    if image_dir is not None:
        return Path(image_dir)
    if coco.folder is None or Path(first_file).is_absolute():
        return Path()
    split = Path(coco.source).stem.split("_")[-1]  # instances_val2017 → val2017
    candidates = [coco.folder.parent / split, coco.folder / split, coco.folder]
    for candidate in candidates:
        if (candidate / first_file).is_file():
            return candidate
    raise ImageLoadError(
        f"Could not find image '{first_file}' of '{coco.source}' in "
        f"{', '.join(repr(str(c)) for c in candidates)}. Pass image_dir= (the folder holding the images)."
    )


def _load_coco_image(path: Path, entry: dict, source: str) -> np.ndarray:
    """Read one image and check its size against the annotation file's ``height`` / ``width``.

    COCO annotations were drawn on the stored pixels: a file carrying an EXIF
    rotation is read without it when only that orientation matches.
    """
    if not path.is_file():
        raise ImageLoadError(
            f"Image file '{path}' (image id {entry['id']}, referenced by '{source}') is missing. "
            "Check image_dir, or download the images of this split."
        )
    image = load_image(path)
    expected = (entry.get("height"), entry.get("width"))
    if None in expected or image.shape[:2] == expected:
        return image
    with Image.open(path) as stored:
        if stored.size[::-1] == expected:
            return _to_rgb_array(stored)
    raise CollectionError(
        f"Image '{path}' is {image.shape[0]}×{image.shape[1]} (H×W) but '{source}' says "
        f"{expected[0]}×{expected[1]} for image id {entry['id']}, so its masks would not line up. "
        "The file may have been resized or replaced; use the original image."
    )


# ---------------------------------------------------------------- the paper's collections


@dataclass(frozen=True)
class CollectionStats:
    """Size of a set of collections, as in the paper's Table 1.

    ``per_class`` maps a category name to ``(images, instances)``, in COCO
    category-id order.
    """

    name: str
    per_class: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def classes(self) -> int:
        return len(self.per_class)

    @property
    def images(self) -> int:
        return sum(images for images, _ in self.per_class.values())

    @property
    def instances(self) -> int:
        return sum(instances for _, instances in self.per_class.values())

    def subset(self, names: Iterable[str], name: str) -> CollectionStats:
        """The statistics of the categories in ``names`` only."""
        names = set(names)
        return CollectionStats(name, {c: v for c, v in self.per_class.items() if c in names})

    def summary(self) -> str:
        """``"COCO-VOC: 12 classes / 1281 images / 3151 instances"``."""
        return f"{self.name}: {self.classes} classes / {self.images} images / {self.instances} instances"

    def table(self) -> str:
        """One line per class (images, instances, VOC or not), then the totals."""
        width = max([len(c) for c in self.per_class] + [8])
        lines = [f"{'class':<{width}}  {'images':>6}  {'instances':>9}  VOC"]
        for name, (images, instances) in self.per_class.items():
            lines.append(
                f"{name:<{width}}  {images:>6}  {instances:>9}  {'yes' if name in COCO_VOC_CATEGORIES else ''}"
            )
        lines.append(f"{'total':<{width}}  {self.images:>6}  {self.instances:>9}")
        return "\n".join(lines)


class CocoCollections(dict):
    """``build_collections``' result: category name → sorted image ids, plus statistics.

    Attributes:
        stats: ``CollectionStats`` of the returned split.
        split_stats: ``{"all": ..., "voc": ..., "nonvoc": ...}`` before the split was applied.
        annotations: the parsed file (``CocoAnnotations``), kept for ``load``.
        image_dir: the image folder given to ``build_collections``.
        min_instances: the rule used, re-applied by ``load``.
    """

    def __init__(
        self,
        ids: dict[str, list[int]],
        stats: CollectionStats,
        split_stats: dict[str, CollectionStats],
        annotations: CocoAnnotations,
        image_dir: str | Path | None,
        min_instances: int,
    ):
        super().__init__(ids)
        self.stats, self.split_stats = stats, split_stats
        self.annotations, self.image_dir, self.min_instances = annotations, image_dir, min_instances

    def load(self, category: str, max_images: int | None = None, protocol_split: str | None = None) -> Collection:
        """Read one collection's images and masks (only now: building reads no image); ``protocol_split``
        (``"tune"``, ``"report"``, None) as in :func:`load_coco`."""
        if category not in self:
            raise CollectionError(f"No collection '{category}'; built collections: {', '.join(self) or 'none'}.")
        return load_coco(
            self.annotations,
            self.image_dir,
            category=category,
            max_images=max_images,
            require_single_category=True,
            min_instances=self.min_instances,
            image_ids=self[category],
            protocol_split=protocol_split,
        )


def build_collections(
    coco_json: str | Path | dict | CocoAnnotations,
    image_dir: str | Path | None = None,
    min_images: int = 10,
    min_instances: int = 2,
    split: str = "all",
    verbose: bool = True,
) -> CocoCollections:
    """Rebuild the paper's COCO collections from an instances file; reads no image.

    The rules (DeepCO3, Sec. 4.1), with crowd regions ignored throughout:

    1. keep images whose annotated objects all belong to a single category;
    2. keep images with at least ``min_instances`` instances (2 for COCO);
    3. drop categories with fewer than ``min_images`` such images (10);
    4. ``split="voc"`` keeps the categories PASCAL VOC covers
       (``COCO_VOC_CATEGORIES``: airplane, bicycle, bird, boat, bottle, bus,
       car, cat, chair, cow, dining table, dog, horse, motorcycle, person,
       potted plant, sheep, couch, train, tv), ``"nonvoc"`` the other
       categories, ``"all"`` both.

    The paper reports 12 classes / 1281 images / 3151 instances (COCO-VOC)
    and 32 / 3130 / 8303 (COCO-NONVOC), built from COCO 2017 train+val. Its
    files are no longer online; this function is how to rebuild them: pass
    ``merge_coco_annotations([train_json, val_json], [train_dir, val_dir])``
    (or one file) and compare the printed table with those numbers. The
    paper does not state every detail of its selection (for example how
    crowd regions were treated), so the counts may differ.

    Args:
        coco_json: an instances file (path), its dict, or ``read_coco``'s result.
        image_dir: the image folder, kept for ``load`` (see ``load_coco``).
        min_images: smallest number of images a category needs.
        min_instances: smallest number of instances an image needs.
        split: ``"all"``, ``"voc"`` or ``"nonvoc"``.
        verbose: print the statistics (summary lines and a per-class table).

    Returns a ``CocoCollections``: a dict category name → sorted image ids,
    with ``.stats`` (``CollectionStats``) and ``.load(name)`` → ``Collection``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    coco = read_coco(coco_json)
    ids_by_category: dict[int, list[int]] = defaultdict(list)
    instances_by_category: Counter = Counter()
    for image_id, image_annotations in coco.by_image.items():
        objects = _objects(image_annotations, include_crowd=False)
        categories = {a["category_id"] for a in objects}
        if len(categories) == 1 and len(objects) >= min_instances:
            (category_id,) = categories
            ids_by_category[category_id].append(image_id)
            instances_by_category[category_id] += len(objects)
    kept = {
        cat_id: sorted(ids_by_category[cat_id])
        for cat_id in coco.categories
        if len(ids_by_category[cat_id]) >= min_images
    }
    names = coco.categories
    everything = CollectionStats("COCO", {names[c]: (len(ids), instances_by_category[c]) for c, ids in kept.items()})
    split_stats = {
        "all": everything,
        "voc": everything.subset(COCO_VOC_CATEGORIES, "COCO-VOC"),
        "nonvoc": everything.subset(set(everything.per_class) - COCO_VOC_CATEGORIES, "COCO-NONVOC"),
    }
    stats = split_stats[split]
    if verbose:
        print(
            f"rules: one category per image, ≥ {min_instances} instances per image, ≥ {min_images} images per class "
            "(crowd regions ignored)"
        )
        for key in ("voc", "nonvoc", "all") if split == "all" else (split,):
            print(split_stats[key].summary())
        print(stats.table())
    collections = {names[c]: ids for c, ids in kept.items() if names[c] in stats.per_class}
    return CocoCollections(collections, stats, split_stats, coco, image_dir, min_instances)
