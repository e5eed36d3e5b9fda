"""PASCAL VOC 2012 and SBD instance ground truth, one category at a time.

Two layouts are read; the one at ``root`` is recognised by its sub-folders.

PASCAL VOC 2012 (``VOCdevkit/VOC2012``)::

    JPEGImages/2007_000032.jpg
    SegmentationObject/2007_000032.png   palette PNG: 0 = background, k = instance k, 255 = void
    SegmentationClass/2007_000032.png    palette PNG: 0 = background, c = class c (1…20), 255 = void
    ImageSets/Segmentation/train.txt     one image id per line (also val.txt, trainval.txt)

SBD, the "augmented VOC" of Hariharan et al. (``benchmark_RELEASE/dataset``)::

    img/2008_000002.jpg
    inst/2008_000002.mat   MATLAB struct GTinst with
                             Segmentation (H, W) label map: 0 = background, k = instance k
                             Categories   (K, 1) class (1…20) of instance k
    train.txt, val.txt     one image id per line

**Void pixels.** VOC marks a band about 5 pixels wide along every object
outline, and regions the annotators found ambiguous, with 255 ("void"). Here
void pixels belong to *no* instance: an instance mask holds exactly the pixels
labelled k. The official VOC scoring ignores void pixels, but a ``Collection``
has no "ignore" mask, so a prediction that also covers the band pays for those
pixels in its IoU (a small loss, largest for thin objects).

Class numbers follow ``VOC_CLASSES``: class c is ``VOC_CLASSES[c - 1]``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from ..data import Collection, CollectionError, ImageLoadError, load_image

#: The 20 PASCAL VOC classes; label value c in the class maps is ``VOC_CLASSES[c - 1]``.
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

#: VOC class name → the COCO category name of the same objects (all 20 VOC classes exist in COCO).
VOC_TO_COCO = {
    "aeroplane": "airplane",
    "bicycle": "bicycle",
    "bird": "bird",
    "boat": "boat",
    "bottle": "bottle",
    "bus": "bus",
    "car": "car",
    "cat": "cat",
    "chair": "chair",
    "cow": "cow",
    "diningtable": "dining table",
    "dog": "dog",
    "horse": "horse",
    "motorbike": "motorcycle",
    "person": "person",
    "pottedplant": "potted plant",
    "sheep": "sheep",
    "sofa": "couch",
    "train": "train",
    "tvmonitor": "tv",
}

#: Label value of void / object-boundary pixels in VOC PNGs.
VOID = 255


# ------------------------------------------------------------------ one image


def instances_from_voc_pngs(object_png: str | Path, class_png: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One VOC image's ground truth from its ``SegmentationObject`` and ``SegmentationClass`` PNGs.

    Returns ``(masks, classes)``: ``masks`` is ``(K, H, W) bool`` (instances in
    label order, void pixels in none of them) and ``classes`` is ``(K,) int``
    (1…20). An instance's class is the most common class label under its
    pixels (VOC's two maps agree, so this is simply "the" class).
    """
    objects, object_path = _read_label_png(object_png), Path(object_png)
    classes_map = _read_label_png(class_png)
    if objects.shape != classes_map.shape:
        raise CollectionError(
            f"'{object_path.name}' is {objects.shape[0]}×{objects.shape[1]} but its class map "
            f"'{Path(class_png).name}' is {classes_map.shape[0]}×{classes_map.shape[1]} (H×W); "
            "the two files must come from the same image."
        )
    labels = np.unique(objects)
    labels = labels[(labels != 0) & (labels != VOID)]
    masks = objects[None, :, :] == labels[:, None, None]
    classes = []
    for label, mask in zip(labels, masks):
        under = classes_map[mask]
        under = under[(under != 0) & (under != VOID)]
        if under.size == 0:
            raise CollectionError(
                f"Instance {label} of '{object_path.name}' has no class in '{Path(class_png).name}' "
                "(only background or void under it); the two maps do not match."
            )
        classes.append(int(np.bincount(under).argmax()))
    return masks, np.array(classes, dtype=int)


def instances_from_sbd_mat(mat_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One SBD image's ground truth from ``inst/<id>.mat`` (struct ``GTinst``).

    Returns ``(masks, classes)``: ``masks`` is ``(K, H, W) bool`` for the
    instance labels present in ``GTinst.Segmentation`` (label order) and
    ``classes`` is ``(K,) int`` with ``classes[i] = GTinst.Categories[label_i - 1]``.
    """
    mat_path = Path(mat_path)
    try:
        content = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, TypeError) as error:
        raise CollectionError(f"'{mat_path}' could not be read as a MATLAB file ({error}).") from None
    if "GTinst" not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise CollectionError(f"'{mat_path}' has no 'GTinst' struct (found {found}); expected an SBD inst/*.mat file.")
    gt = content["GTinst"]
    segmentation = np.asarray(gt.Segmentation)
    categories = np.atleast_1d(np.asarray(gt.Categories)).astype(int).ravel()
    if segmentation.ndim != 2:
        raise CollectionError(f"GTinst.Segmentation in '{mat_path}' has shape {segmentation.shape}; expected (H, W).")
    labels = np.unique(segmentation)
    labels = labels[(labels != 0) & (labels != VOID)].astype(int)
    if labels.size and labels.max() > categories.size:
        raise CollectionError(
            f"'{mat_path}' has instance label {labels.max()} but only {categories.size} entries in "
            "GTinst.Categories; the file is inconsistent."
        )
    masks = segmentation[None, :, :] == labels[:, None, None]
    return masks, categories[labels - 1]


# ------------------------------------------------------------------ collections


def load_voc_instances(
    root: str | Path,
    image_set_file: str | Path | Sequence[str] | None = None,
    category: str | int | None = None,
    max_images: int | None = None,
    min_instances: int = 1,
    require_single_category: bool = False,
) -> Collection:
    """A collection of VOC 2012 or SBD images with their instance masks.

    Args:
        root: the ``VOC2012`` folder (or ``VOCdevkit``), or SBD's ``dataset``
            folder (or ``benchmark_RELEASE``).
        image_set_file: which images: ``None`` = every annotated image; a list of
            ids (``["2007_000032", ...]``); a text file of ids; or a split name
            (``"val"``) looked up as ``ImageSets/Segmentation/val.txt`` (VOC) or
            ``val.txt`` (SBD).
        category: a VOC class name (``"dog"``; the COCO names such as
            ``"airplane"`` are accepted too) or class number 1…20. ``None``
            keeps the instances of every class (display name: the class when
            only one occurs, else ``"object"``).
        max_images: stop after this many selected images.
        min_instances: keep images with at least this many instances of ``category``.
        require_single_category: keep only images whose instances all belong
            to ``category`` (or, with ``category=None``, all to one class): the
            rule behind the paper's VOC collections.

    Returns a ``Collection`` in id order whose ``gt_masks[n]`` is
    ``(K_n, H_n, W_n) bool``, one mask per instance of ``category``, void
    pixels excluded (see the module docstring).
    """
    root, layout = _find_layout(root)
    class_index = None if category is None else voc_class_index(category)
    if min_instances < 1:
        raise ValueError(f"min_instances must be ≥ 1; got {min_instances}.")
    ids = _image_ids(root, layout, image_set_file)
    selected, found = [], Counter()
    for image_id in ids:
        masks, classes = _read_instances(root, layout, image_id)
        found.update(set(classes.tolist()))
        keep = np.ones(len(classes), bool) if class_index is None else classes == class_index
        single = len(set(classes.tolist())) == 1 and keep.all()
        if keep.sum() < min_instances or (require_single_category and not single):
            continue
        selected.append((image_id, masks[keep], classes[keep]))
        if max_images is not None and len(selected) >= max_images:
            break
    if len(selected) < 2:
        wanted = "any class" if class_index is None else f"'{VOC_CLASSES[class_index - 1]}'"
        present = ", ".join(f"{VOC_CLASSES[c - 1]} ({n} images)" for c, n in sorted(found.items())) or "none"
        rule = " and no other class" if require_single_category else ""
        raise CollectionError(
            f"Only {len(selected)} of the {len(ids)} images in '{root}' have ≥ {min_instances} "
            f"instance(s) of {wanted}{rule}; a collection needs at least 2. Classes present: "
            f"{present}."
        )
    images, paths, gt_masks, classes_seen = [], [], [], set()
    image_folder = root / ("JPEGImages" if layout == "voc" else "img")
    for image_id, masks, classes in selected:
        path = image_folder / f"{image_id}.jpg"
        if not path.is_file():
            raise ImageLoadError(
                f"Image '{path.name}' (id {image_id}) has ground truth but is missing from "
                f"'{image_folder}'. The data set looks incomplete; unpack it again."
            )
        image = load_image(path)
        if masks.shape[1:] != image.shape[:2]:
            raise CollectionError(
                f"The ground truth of '{image_id}' is {masks.shape[1]}×{masks.shape[2]} but the image "
                f"'{path}' is {image.shape[0]}×{image.shape[1]} (H×W); the files do not belong together."
            )
        images.append(image)
        paths.append(path)
        gt_masks.append(masks)
        classes_seen.update(classes.tolist())
    if class_index is not None:
        name = VOC_CLASSES[class_index - 1]
    else:
        name = VOC_CLASSES[classes_seen.pop() - 1] if len(classes_seen) == 1 else "object"
    return Collection(images=images, names=[i for i, _, _ in selected], paths=paths, gt_masks=gt_masks, category=name)


def voc_class_index(category: str | int) -> int:
    """A VOC class name (or its COCO name, any case) or number → the class number 1…20.

    >>> voc_class_index("dog"), voc_class_index("motorcycle"), voc_class_index(15)
    (12, 14, 15)
    """
    if isinstance(category, (int, np.integer)) and not isinstance(category, bool):
        if 1 <= category <= len(VOC_CLASSES):
            return int(category)
        raise ValueError(f"VOC class numbers run from 1 to {len(VOC_CLASSES)}; got {category}.")
    key = str(category).strip().lower()
    coco_to_voc = {coco: voc for voc, coco in VOC_TO_COCO.items()}
    key = coco_to_voc.get(key, key).replace(" ", "")
    if key in VOC_CLASSES:
        return VOC_CLASSES.index(key) + 1
    raise ValueError(f"Unknown VOC class {category!r}. Choose one of: {', '.join(VOC_CLASSES)}.")


# ------------------------------------------------------------------ helpers


def _read_label_png(path: str | Path) -> np.ndarray:
    """A VOC label PNG (palette or 8-bit gray) → ``(H, W) uint8`` label values (not colours)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Label file '{path}' is missing; the VOC folder looks incomplete.")
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise CollectionError(
                f"'{path}' is a {image.mode} image; VOC label maps must be palette (indexed) PNGs "
                "whose pixel values are labels. Use the original files: re-saving them as RGB "
                "turns labels into colours."
            )
        return np.asarray(image, dtype=np.uint8)


def _find_layout(root: str | Path) -> tuple[Path, str]:
    """``root`` (or its VOC2012 / dataset sub-folder) and its layout, ``"voc"`` or ``"sbd"``."""
    root = Path(root)
    for folder in (root, root / "VOC2012", root / "dataset"):
        if (folder / "SegmentationObject").is_dir():
            return folder, "voc"
        if (folder / "inst").is_dir():
            return folder, "sbd"
    raise FileNotFoundError(
        f"'{root}' is neither a VOC 2012 folder (with SegmentationObject/, SegmentationClass/, "
        "JPEGImages/) nor an SBD folder (with inst/ and img/)."
    )


def _image_ids(root: Path, layout: str, image_set: str | Path | Sequence[str] | None) -> list[str]:
    """The image ids to read, in order."""
    if image_set is None:
        folder, pattern = (root / "SegmentationObject", "*.png") if layout == "voc" else (root / "inst", "*.mat")
        return sorted(p.stem for p in folder.glob(pattern))
    if not isinstance(image_set, (str, Path)):
        return [str(i).strip() for i in image_set]
    path = Path(image_set)
    if not path.is_file():
        named = (
            root / "ImageSets" / "Segmentation" / f"{image_set}.txt" if layout == "voc" else root / f"{image_set}.txt"
        )
        if not named.is_file():
            raise FileNotFoundError(
                f"Image set '{image_set}' not found (looked for '{path}' and '{named}'). "
                "Pass a text file of ids, a list of ids, or a split name such as 'val'."
            )
        path = named
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _read_instances(root: Path, layout: str, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    if layout == "voc":
        object_png = root / "SegmentationObject" / f"{image_id}.png"
        class_png = root / "SegmentationClass" / f"{image_id}.png"
        if not object_png.is_file():
            warnings.warn(
                f"Image id '{image_id}' has no instance annotation ({object_png.name}); skipping it. "
                "(VOC annotates instances only for the Segmentation image sets.)",
                stacklevel=3,
            )
            return np.zeros((0, 1, 1), bool), np.zeros(0, int)
        return instances_from_voc_pngs(object_png, class_png)
    mat = root / "inst" / f"{image_id}.mat"
    if not mat.is_file():
        warnings.warn(f"Image id '{image_id}' has no instance annotation ({mat}); skipping it.", stacklevel=3)
        return np.zeros((0, 1, 1), bool), np.zeros(0, int)
    return instances_from_sbd_mat(mat)
