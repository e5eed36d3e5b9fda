"""A procedural collection with exact ground truth: no files, no downloads.

Every image shows 1–3 instances of one object kind — a red-orange ellipse
with concentric darker rings — at varying scale, shape, rotation and position
(never overlapping, never touching each other or the image border), pasted on
a textured background of other colours (blue, green, teal, grey or purple
noise, stripes or blobs). The objects are the only red pixels, so they are
salient and easy to check::

    >>> from cosegkit.datasets import synthetic_collection
    >>> c = synthetic_collection(n_images=4, seed=1)
    >>> len(c), c[0].shape, c.gt_masks[0].dtype
    (4, (128, 160, 3), dtype('bool'))

Colour guarantee (tests rely on it): object pixels have R ≥ 160, G ≤ 80,
B ≤ 60; background pixels have R ≤ 140.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import draw

from ..data import Collection

# Background colour pairs (R ≤ 120 before noise, so R ≤ 140 after it).
_BACKGROUND_COLOURS = np.array(
    [
        [(40, 70, 150), (90, 130, 200)],  # blues
        [(40, 110, 50), (110, 160, 90)],  # greens
        [(30, 110, 120), (90, 170, 170)],  # teals
        [(80, 80, 85), (120, 125, 130)],  # greys
        [(80, 50, 120), (120, 100, 170)],  # purples
    ],
    dtype=np.float64,
)
_OBJECT_LIGHT = np.array([235.0, 70.0, 40.0])
_OBJECT_DARK = np.array([170.0, 30.0, 20.0])


def synthetic_collection(
    n_images: int = 6, size: tuple[int, int] = (128, 160), instances: tuple[int, int] = (1, 3), seed: int = 0
) -> Collection:
    """``n_images`` procedural images ``(H, W, 3) uint8`` with exact instance masks.

    Args:
        n_images: number of images (≥ 2).
        size: ``(H, W)`` of every image.
        instances: ``(lo, hi)``; each image holds between lo and hi instances (inclusive).
        seed: same seed → identical images and masks.

    Returns a ``Collection`` (category ``"ringed ellipse"``) whose ``gt_masks[n]``
    is ``(K_n, H, W) bool``: exactly the pixels painted for each instance.
    """
    lo, hi = instances
    if not 0 <= lo <= hi:
        raise ValueError(f"instances must be (lo, hi) with 0 ≤ lo ≤ hi; got {instances}.")
    height, width = size
    if min(height, width) < 24:
        raise ValueError(f"size {size} is too small for synthetic objects; use at least 24 × 24.")
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n_images):
        image = _background(rng, height, width)
        instance_masks = _place_instances(rng, height, width, int(rng.integers(lo, hi + 1)))
        for mask in instance_masks:
            _paint_object(rng, image, mask)
        images.append(np.round(image).astype(np.uint8))
        masks.append(np.stack(instance_masks) if instance_masks else np.zeros((0, height, width), bool))
    names = [f"synthetic_{i:03d}" for i in range(n_images)]
    return Collection(images=images, names=names, gt_masks=masks, category="ringed ellipse")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background ``(H, W, 3) float64`` mixing two colours of one palette entry."""
    colour_a, colour_b = _BACKGROUND_COLOURS[rng.integers(len(_BACKGROUND_COLOURS))]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    kind = rng.integers(3)
    if kind == 0:  # smooth noise
        mix = ndimage.gaussian_filter(rng.standard_normal((height, width)), sigma=rng.uniform(3, 8))
        mix = (mix - mix.min()) / (np.ptp(mix) + 1e-12)
    elif kind == 1:  # stripes at a random angle
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 20)
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * (rows * np.sin(angle) + cols * np.cos(angle)) / period)
    else:  # soft blobs
        mix = np.zeros((height, width))
        for _ in range(12):
            r, c, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(5, 20)
            mix += np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * radius**2))
        mix = np.clip(mix, 0, 1)
    image = colour_a + mix[..., None] * (colour_b - colour_a)
    image += rng.normal(0, 6, size=image.shape)
    image[..., 0] = np.clip(image[..., 0], 0, 140)  # keep backgrounds un-red
    return np.clip(image, 0, 255)


def _place_instances(rng: np.random.Generator, height: int, width: int, count: int) -> list[np.ndarray]:
    """Up to ``count`` non-touching ellipse masks ``(H, W) bool``, 3 px away from the border."""
    margin, gap = 3, 3
    occupied = np.zeros((height, width), bool)
    placed = []
    for _ in range(count):
        scale = rng.uniform(0.12, 0.22) * min(height, width)
        for attempt in range(200):
            if attempt and attempt % 50 == 0:
                scale *= 0.8  # crowded: try smaller
            r_radius = scale * rng.uniform(0.7, 1.0)
            c_radius = scale * rng.uniform(0.7, 1.0)
            reach = max(r_radius, c_radius) + margin + 1
            if 2 * reach >= min(height, width):
                continue
            centre_r = rng.uniform(reach, height - reach)
            centre_c = rng.uniform(reach, width - reach)
            rr, cc = draw.ellipse(
                centre_r, centre_c, r_radius, c_radius, shape=(height, width), rotation=rng.uniform(-np.pi, np.pi)
            )
            mask = np.zeros((height, width), bool)
            mask[rr, cc] = True
            if mask.sum() < 20:
                continue
            if not (ndimage.binary_dilation(mask, iterations=gap) & occupied).any():
                placed.append(mask)
                occupied |= mask
                break
    return placed


def _paint_object(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    """Paint one ringed red-orange object into ``image`` ``(H, W, 3)`` where ``mask`` is true."""
    rows, cols = np.nonzero(mask)
    centre_r, centre_c = rows.mean(), cols.mean()
    distance = np.hypot(rows - centre_r, cols - centre_c)
    period = max(4.0, np.sqrt(mask.sum() / np.pi) / 2.5)
    mix = 0.5 + 0.5 * np.cos(2 * np.pi * distance / period)  # 1 = light, 0 = dark ring
    colour = _OBJECT_DARK + mix[:, None] * (_OBJECT_LIGHT - _OBJECT_DARK)
    colour += rng.normal(0, 4, size=colour.shape)
    low, high = np.array([160.0, 0.0, 0.0]), np.array([255.0, 80.0, 60.0])
    image[rows, cols] = np.clip(colour, low, high)
