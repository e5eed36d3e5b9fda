"""Images in, a ``Collection`` out: the one object every other step reads.

A collection is N ≥ 2 RGB images of one object category, with optional
instance ground truth (one boolean mask per instance, at the original image
resolution, used only for evaluation)::

    >>> import numpy as np
    >>> from cosegkit.data import Collection
    >>> images = [np.zeros((20, 32, 3), np.uint8), np.zeros((40, 30, 3), np.uint8)]
    >>> c = Collection.from_arrays(images)
    >>> len(c), c.names, c[1].shape
    (2, ['image_000', 'image_001'], (40, 30, 3))

``load_image`` reads any file Pillow can open and always returns an
``(H, W, 3) uint8`` RGB array as it is *displayed* (EXIF rotation applied), so
masks drawn on the displayed image line up with the array.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: File name endings ``load_collection`` reads from a folder (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")

#: Largest number of pixels ``load_image`` decodes (10000 × 10000); larger files are refused
#: before decoding, since a tiny compressed file can declare a gigantic image ("decompression bomb").
MAX_PIXELS = 10_000 * 10_000


class ImageLoadError(ValueError):
    """An image file that cannot be read (missing, empty, truncated, not an image, or too large)."""


class CollectionError(ValueError):
    """A set of images that cannot form a co-segmentation collection."""


# --------------------------------------------------------------------------- images


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read one image file as it is displayed: ``(H, W, 3) uint8`` RGB.

    - EXIF orientation is applied (``ImageOps.exif_transpose``), so a phone
      photo stored sideways comes out upright, matching annotation tools.
    - Grayscale and 1-bit images are repeated over the three channels.
    - 16-bit images (``I;16`` PNG/TIFF) are scaled to 8 bit with ``round(v / 257)``
      (65535 → 255, 32768 → 128), not clipped.
    - Transparent images (RGBA, LA, palette with transparency) are composited on
      a **white** background, as image viewers show them on a light page; the
      colour hidden under fully transparent pixels is often junk (black or noise).
    - CMYK, YCbCr and palette images are converted to RGB by Pillow.
    - Multi-frame files (animated GIF, multi-page TIFF) give their first frame.
    - Any size is accepted, even tiny ones (e.g. 32 × 20: later steps resize
      every image to the network's input size); images whose declared size
      exceeds ``max_pixels`` are refused before decoding.

    Raises ``ImageLoadError`` (a ``ValueError``) naming the file when it is
    missing, empty, truncated, not an image, or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"Image file not found: '{path}'. Check the path (is it relative to the right folder?).")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"Image file '{path}' is empty (0 bytes). Remove it or copy it again from its source.")
    try:
        with warnings.catch_warnings():
            # Pillow's own decompression-bomb warning is replaced by the explicit check below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageLoadError(_too_large_message(path, width, height, max_pixels))
                image = ImageOps.exif_transpose(image)  # also decodes the pixels
                return _to_rgb_array(image)
    except Image.DecompressionBombError as error:
        raise ImageLoadError(
            f"Image file '{path}' declares more pixels than Pillow allows ({error}); it may be a decompression bomb. "
            "Downscale it with an image editor before using it."
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"'{path}' is not an image Pillow can read (wrong extension, or not an image at all). "
            "Convert it to PNG or JPEG, or remove it from the folder."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        if isinstance(error, ImageLoadError):
            raise
        raise ImageLoadError(
            f"Image file '{path}' could not be decoded ({error}); it is probably truncated or "
            "corrupt. Open it in an image viewer, re-save it, or remove it from the folder."
        ) from None


def _too_large_message(path: Path, width: int, height: int, max_pixels: int) -> str:
    return (
        f"Image file '{path}' declares {width}×{height} pixels ({width * height / 1e6:.0f} MP), more than the "
        f"limit of {max_pixels / 1e6:.0f} MP; it may be a decompression bomb. Downscale it, or pass a larger "
        "max_pixels if you trust the file."
    )


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode → ``(H, W, 3) uint8`` RGB."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit samples (mode "I" is how some Pillow versions open 16-bit PNGs).
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        gray = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if np.nanmax(values) <= 1.0 else 1.0  # float images in [0, 1] or [0, 255]
        gray = np.round(np.clip(np.nan_to_num(values) * scale, 0, 255)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, RGBX, ...
    return np.asarray(image, dtype=np.uint8).copy()


def as_rgb_uint8(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Any image-like array → ``(H, W, 3) uint8``.

    ``(H, W)`` and ``(H, W, 1)`` are repeated over three channels, ``(H, W, 4)``
    loses its alpha channel. Floats are read as [0, 1] when their maximum is
    ≤ 1, else as [0, 255]; ``uint16`` is scaled by 1/257; ``bool`` gives 0/255.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise CollectionError(f"{name} has shape {array.shape}; expected (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) gray.")
    array = array[..., :3]
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise CollectionError(f"{name} is empty (shape {array.shape}).")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64))
        scale = 255.0 if values.max() <= 1.0 else 1.0
        return np.round(np.clip(values * scale, 0, 255)).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise CollectionError(f"{name} has integer values in [{array.min()}, {array.max()}]; expected 0…255.")
        return array.astype(np.uint8)
    raise CollectionError(f"{name} has dtype {array.dtype}; expected uint8 (or float in [0, 1]).")


def masks_from_label_map(label_map: np.ndarray) -> np.ndarray:
    """An instance label map ``(H, W)`` (0 = background, k > 0 = instance k) → ``(K, H, W) bool``.

    Instances are ordered by label value; missing label values are skipped.

    >>> masks_from_label_map(np.array([[0, 2], [2, 1]])).astype(int).tolist()
    [[[0, 0], [0, 1]], [[0, 1], [1, 0]]]
    """
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"A label map must be 2-D (H, W); got shape {label_map.shape}.")
    labels = np.unique(label_map)
    labels = labels[labels != 0]
    return label_map[None, :, :] == labels[:, None, None]


# ---------------------------------------------------------------------- collection


@dataclass(eq=False, repr=False)
class Collection:
    """N ≥ 2 images of one category, with optional instance ground truth.

    Attributes:
        images: N arrays ``(H_n, W_n, 3) uint8`` RGB (sizes may differ).
        names: N unique names (file stems for loaded files), used to match
            user-supplied maps and to label results.
        paths: N source paths, ``None`` for arrays given in memory.
        gt_masks: ``None`` when there is no ground truth, else N boolean arrays
            ``(K_n, H_n, W_n)``, one mask per instance at the original image
            resolution; ``K_n = 0`` is allowed (an image with no instance).
        category: a display name for the shared object ("object" if unknown).

    Indexing gives an image: ``collection[0]`` is ``images[0]``.
    """

    images: list[np.ndarray]
    names: list[str] | None = None
    paths: list[Path | None] | None = None
    gt_masks: list[np.ndarray] | None = None
    category: str = "object"

    def __post_init__(self) -> None:
        if isinstance(self.images, np.ndarray) and self.images.ndim == 4:
            self.images = list(self.images)  # a batch (N, H, W, 3)
        self.images = list(self.images)
        n = len(self.images)
        if n < 2:
            raise CollectionError(
                f"instance co-segmentation needs at least 2 images of the same category; got {n}. "
                "Add more images showing the same kind of object (the method learns what they share)."
            )
        self.names = [f"image_{i:03d}" for i in range(n)] if self.names is None else [str(s) for s in self.names]
        self.paths = [None] * n if self.paths is None else [None if p is None else Path(p) for p in self.paths]
        if len(self.names) != n or len(self.paths) != n:
            raise CollectionError(f"Collection has {n} images but {len(self.names)} names and {len(self.paths)} paths.")
        duplicates = sorted({s for s in self.names if self.names.count(s) > 1})
        if duplicates:
            raise CollectionError(
                f"Image names must be unique; repeated: {duplicates}. Rename the files or pass names=."
            )
        self.images = [as_rgb_uint8(image, f"image '{name}'") for image, name in zip(self.images, self.names)]
        if self.gt_masks is not None:
            self.gt_masks = self._checked_masks(self.gt_masks)

    def _checked_masks(self, gt_masks: Sequence[np.ndarray]) -> list[np.ndarray]:
        gt_masks = list(gt_masks)
        if len(gt_masks) != len(self.images):
            raise CollectionError(
                f"gt_masks has {len(gt_masks)} entries for {len(self.images)} images; give one "
                "(K, H, W) array per image (K = 0 for an image without instances)."
            )
        checked = []
        for masks, image, name in zip(gt_masks, self.images, self.names):
            masks = np.asarray(masks)
            if masks.ndim != 3:
                raise CollectionError(
                    f"Ground truth of image '{name}' has shape {masks.shape}; expected (K, H, W) with one boolean "
                    "mask per instance. Convert a label map with cosegkit.data.masks_from_label_map."
                )
            if masks.shape[1:] != image.shape[:2]:
                raise CollectionError(
                    f"Ground-truth masks of image '{name}' are {masks.shape[1]}×{masks.shape[2]} but the image is "
                    f"{image.shape[0]}×{image.shape[1]} (H×W); masks must be at the original image resolution "
                    "(was the image rotated by EXIF or resized?)."
                )
            checked.append(masks.astype(bool, copy=False))
        return checked

    @classmethod
    def from_arrays(
        cls,
        images: Sequence[np.ndarray],
        names: Sequence[str] | None = None,
        gt_masks: Sequence[np.ndarray] | None = None,
        category: str = "object",
    ) -> Collection:
        """A collection from in-memory arrays ``(H, W, 3)`` (gray, RGBA and float in [0, 1] are converted)."""
        return cls(
            images=list(images), names=None if names is None else list(names), gt_masks=gt_masks, category=category
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        """The image ``(H, W, 3) uint8`` at ``index``."""
        return self.images[index]

    @property
    def has_ground_truth(self) -> bool:
        return self.gt_masks is not None

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of every image."""
        return [image.shape[:2] for image in self.images]

    def subset(self, indices: Sequence[int]) -> Collection:
        """A new collection with the images at ``indices`` (in that order); needs ≥ 2 of them."""
        indices = [int(i) for i in indices]
        pick = lambda items: [items[i] for i in indices]  # noqa: E731
        return Collection(
            images=pick(self.images),
            names=pick(self.names),
            paths=pick(self.paths),
            gt_masks=None if self.gt_masks is None else pick(self.gt_masks),
            category=self.category,
        )

    def __repr__(self) -> str:
        truth = "no ground truth"
        if self.gt_masks is not None:
            truth = f"{sum(len(m) for m in self.gt_masks)} ground-truth instances"
        return f"Collection(category={self.category!r}, {len(self)} images, {truth})"


# ------------------------------------------------------------------------- loading


def image_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name.

    Files with other extensions are skipped with a warning naming them; hidden
    files (``.DS_Store``) and sub-folders are skipped silently.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder not found: '{folder}'.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if skipped:
        warnings.warn(f"Skipping {len(skipped)} non-image file(s) in '{folder}': {', '.join(skipped)}", stacklevel=3)
    return images


def load_collection(
    source: str | Path | Sequence[str | Path] | Sequence[np.ndarray] | Collection,
    max_images: int | None = None,
    category: str = "object",
) -> Collection:
    """Build a ``Collection`` from a folder, a list of image paths, or a list of arrays.

    Args:
        source: a folder (its images sorted by file name; see ``image_files``),
            a list of paths, a list of ``(H, W, 3)`` arrays or PIL images, or a
            ``Collection``.
        max_images: keep only the first ``max_images`` images (``None``: all).
        category: display name of the shared object.

    Names are file stems (the full file name where two stems collide).
    Raises ``CollectionError`` for an empty folder or fewer than 2 images and
    ``ImageLoadError`` for an unreadable file.
    """
    if isinstance(source, Collection):
        return source if max_images is None else source.subset(range(min(max_images, len(source))))
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if folder.is_file():
            raise CollectionError(
                f"'{folder}' is a single file; instance co-segmentation needs at least 2 images of "
                "the same category. Pass a folder or a list of image paths."
            )
        paths = image_files(folder)
        if not paths:
            raise CollectionError(
                f"No images found in '{folder}'. Files ending in {', '.join(IMAGE_EXTENSIONS)} "
                "(any case) are read; sub-folders are not searched."
            )
    else:
        items = [np.asarray(item) if isinstance(item, Image.Image) else item for item in source]
        if items and all(isinstance(item, np.ndarray) for item in items):
            items = items[:max_images] if max_images is not None else items
            return Collection.from_arrays(items, category=category)
        if not all(isinstance(item, (str, Path)) for item in items):
            raise TypeError(
                "load_collection takes a folder, a list of image paths, or a list of numpy arrays "
                "(or PIL images); got a list of " + ", ".join(sorted({type(i).__name__ for i in items}))
            )
        paths = [Path(item) for item in items]
    if max_images is not None:
        paths = paths[:max_images]
    stems = [p.stem for p in paths]
    names = [p.name if stems.count(p.stem) > 1 else p.stem for p in paths]
    images = [load_image(p) for p in paths]
    return Collection(images=images, names=names, paths=paths, category=category)
