"""The whole method in one call: ``cosegment(images) -> Result``.

    collection ─ fit (stage 1) ─▶ network
                 for each image:  Z, S  ─▶ peaks ─▶ heat maps (peak back-propagation)
                                  proposals
                 ranking + NMS (+ class filter) ─▶ masks, scores

Everything expensive (training, heat maps, proposals) is kept on the :class:`Result`, so
``result.rerank(beta=..., gamma=..., nms_iou=..., peak_threshold=...)`` re-runs only the
cheap last step. Heat maps are computed for the peaks at or above the peak threshold only
(no heat map is kept that the ranking will not read); a rerank with a lower threshold computes
those of the new peaks then.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import atomic
from .config import Config, preset
from .data import Collection, load_collection
from .model import CoSaliencyNet, to_input
from .prm import find_peaks, zplus_network
from .prm import heatmaps as peak_heatmaps
from .proposals import Proposals, as_proposals, proposals_for
from .ranking import RANKING_FIELDS, class_filter, peak_level, peaks_in_use, select_instances
from .saliency import resize_map
from .train import FitResult, compute_priors, fit
from .vit import is_vit


@dataclass
class ImageResult:
    """Everything cosegkit knows about one image. Shapes: original (H, W), proposals' working
    resolution (h, w), network grid (hz, wz)."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8
    logits: np.ndarray  # (hz, wz) Z, the low-resolution co-saliency logits
    saliency: np.ndarray  # (H, W) float32 co-saliency S at the original resolution
    saliency_work: np.ndarray  # (h, w) S at the proposals' working resolution
    peaks: np.ndarray  # (M, 2) the local maxima of Z (row, col) at or above peak_floor, best first
    peak_values: np.ndarray  # (M,) Z at the peaks
    heatmaps: np.ndarray  # (M, h, w) peak back-propagation heat map of every peak (not normalised)
    proposals: Proposals  # candidate masks at (h, w)
    prior_work: np.ndarray | None = None  # (h, w) the saliency prior Ŝ at the proposals' working resolution
    peak_floor: float = -np.inf  # the level of Z down to which local maxima are in `peaks` (the peak threshold)
    masks: np.ndarray = None  # (K, H, W) bool, one per instance, best first
    scores: np.ndarray = None  # (K,) ranking score R of each instance
    instance_peaks: np.ndarray = None  # (K,) index into `peaks` of the peak that found each instance
    proposal_indices: np.ndarray = None  # (K,) index into `proposals`
    ranking_cache: dict = field(default_factory=dict, repr=False)  # ranking terms by options (ranking.cached_terms_for)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def used_peaks(self, threshold="median") -> np.ndarray:
        """Indices of the peaks at least ``threshold`` ("median" of Z, or a float in logit units)."""
        return peaks_in_use(self.logits, self.peak_values, threshold)


@dataclass
class Result:
    """Instances of a whole collection, plus what produced them. See :func:`cosegment`."""

    images: list[ImageResult]
    config: Config
    fit: FitResult | None = None
    timings: dict = field(default_factory=dict)  # seconds per stage
    collection: Collection | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> ImageResult:
        return self.images[i]

    @property
    def n_instances(self) -> int:
        return int(sum(len(r.scores) for r in self.images))

    # ---------------------------------------------------------------- re-ranking
    def rerank(self, **changes) -> Result:
        """A new Result with the ranking step re-run under changed settings (fast: no training,
        no heat maps, no proposals). Accepts ``ranking=RankingOptions(...)`` and any option of
        :class:`cosegkit.ranking.RankingOptions` by name: ``result.rerank(beta=0.6, nms_iou=0.3)``."""
        bad = set(changes) - RANKING_FIELDS - {"ranking"}
        if bad:
            raise TypeError(
                f"rerank() cannot change {sorted(bad)}: they need re-training or new heat maps. "
                f"Allowed: ranking and {sorted(RANKING_FIELDS)}"
            )
        config = self.config.replace(**changes)
        images = [replace(r) for r in self.images]
        lower = [r for r in images if peak_level(r.logits, config.ranking.peak_threshold) < r.peak_floor]
        if lower:  # a lower peak threshold: heat maps for the peaks it adds
            if self.fit is None:
                raise ValueError(
                    "rerank(peak_threshold=...) below the threshold the heat maps were made for needs the trained "
                    "network (Result.fit); this Result has none. Use a threshold ≥ the original one."
                )
            add_peaks(lower, self.fit.net, config)
        select_all(images, config)
        return replace(self, images=images, config=config)

    # ---------------------------------------------------------------- outputs
    def predictions(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image (masks (K, H, W) bool, scores (K,)) — what :mod:`cosegkit.evaluate` takes."""
        return [(r.masks, r.scores) for r in self.images]

    def evaluate(self, ground_truth: list[np.ndarray] | None = None) -> dict:
        """mAPʳ@0.25, mAPʳ@0.5 and CorLocʳ against ``ground_truth`` (default: the collection's)."""
        from .evaluate import evaluate

        if ground_truth is None:
            if self.collection is None or not self.collection.has_ground_truth:
                raise ValueError(
                    "This collection has no ground truth; pass ground_truth=[(G, H, W) bool masks per image]."
                )
            ground_truth = self.collection.gt_masks
        return evaluate(self.predictions(), ground_truth)

    def file_names(self) -> list[str]:
        """Each image's file name relative to the folder it was read from, with its extension (``"a.jpg"``;
        for paths from several folders, relative to their common folder: ``"day/a.jpg"``). An image given
        as an array has no file: its name stands in."""
        paths = self.collection.paths if self.collection is not None else [None] * len(self)
        if len(paths) != len(self) or any(p is None for p in paths):
            return [r.name for r in self.images]
        root = Path(os.path.commonpath([str(Path(p).absolute().parent) for p in paths]))
        return [Path(p).absolute().relative_to(root).as_posix() for p in paths]

    def output_stems(self) -> list[str]:
        """The stem of each image's output files (``<stem>_instances.png``, ``<stem>_overlay.png``): its file name
        *with* the extension, folders joined by ``_`` (``"a.jpg"``, ``"day_a.jpg"``), so ``a.jpg`` and ``a.png`` write
        ``a.jpg_instances.png`` and ``a.png_instances.png``. Unique: a clash left over gets ``_2``, ``_3``, …"""
        stems, seen = [], set()
        for name in self.file_names():
            stem = candidate = name.replace("/", "_")
            k = 1
            while candidate in seen:
                k += 1
                candidate = f"{stem}_{k}"
            seen.add(candidate)
            stems.append(candidate)
        return stems

    def to_coco(self, path: str | Path, category: str = "object") -> Path:
        """Write COCO *results* JSON (segmentation as RLE, score, bbox; image ids 1…N in order) atomically.

        Also writes ``<path stem>_images.json`` beside it with the image list (id, file_name, height, width);
        ``file_name`` is the image's real file name (:meth:`file_names`), so tools that match predictions to a
        ground-truth file's images by name find them."""
        import pycocotools.mask as mask_utils

        detections, images = [], []
        for image_id, (r, file_name) in enumerate(zip(self.images, self.file_names()), start=1):
            h, w = r.shape
            images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
            if len(r.masks):
                rles = mask_utils.encode(np.asfortranarray(r.masks.transpose(1, 2, 0).astype(np.uint8)))
                boxes = mask_utils.toBbox(rles)
                for rle, box, score in zip(rles, boxes, r.scores):
                    rle["counts"] = rle["counts"].decode("ascii")
                    detections.append(
                        {
                            "image_id": image_id,
                            "category_id": 1,
                            "segmentation": rle,
                            "score": float(score),
                            "bbox": [float(v) for v in box],
                        }
                    )
        path = Path(path)
        atomic.write_text(path, json.dumps(detections))
        meta = {"images": images, "categories": [{"id": 1, "name": category}]}
        atomic.write_text(path.with_name(path.stem + "_images.json"), json.dumps(meta, indent=1))
        return path

    def save(self, folder: str | Path, overlays: bool = True) -> Path:
        """Write per image ``<file name>_instances.png`` (0 = background, k = instance k, best first) and,
        with ``overlays``, ``<file name>_overlay.png``, the file name with its extension (``a.jpg_instances.png``,
        see :meth:`output_stems`); plus ``instances.json`` (COCO results). Atomic per file."""
        from PIL import Image

        from .viz import overlay_figure

        folder = atomic.ensure_writable_folder(folder)
        for r, stem in zip(self.images, self.output_stems()):
            ids = np.zeros(r.shape, np.uint16 if len(r.masks) > 255 else np.uint8)
            for k in range(len(r.masks) - 1, -1, -1):  # best instance drawn last, on top
                ids[r.masks[k]] = k + 1
            with atomic.atomic_path(folder / f"{stem}_instances.png") as tmp:
                Image.fromarray(ids).save(tmp, format="PNG")
            if overlays:
                fig = overlay_figure(r)
                with atomic.atomic_path(folder / f"{stem}_overlay.png") as tmp:
                    fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
                import matplotlib.pyplot as plt

                plt.close(fig)
        self.to_coco(folder / "instances.json", category=self.collection.category if self.collection else "object")
        return folder

    def show(self, i: int = 0, ax=None, **kwargs):
        """Draw image ``i`` with its instances in distinct colours (matplotlib)."""
        from .viz import show_instances

        return show_instances(self.images[i], ax=ax, **kwargs)

    def summary(self) -> str:
        lines = [
            f"{len(self)} images, {self.n_instances} instances ({self.n_instances / max(1, len(self)):.1f} per image)"
        ]
        if self.timings:
            lines.append("seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items()))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Result({self.summary()})"


# -------------------------------------------------------------------- steps
def select_all(images: list[ImageResult], config: Config) -> None:
    """:func:`cosegkit.ranking.select_instances` for every image, then the optional class filter (in place)."""
    options = config.ranking
    found = []
    for r in images:
        found.append(
            select_instances(
                r.proposals,
                r.heatmaps,
                r.saliency_work,
                options,
                peak_values=r.peak_values,
                logits=r.logits,
                prior=r.prior_work,
                cache=r.ranking_cache,  # terms computed once per set of options that shape them
            )
        )
    if options.class_filter:
        keeps = class_filter([f[1] for f in found], options.class_percentile)
        found = [(i[k], s[k], p[k]) for (i, s, p), k in zip(found, keeps)]
    for r, (idx, scores, peaks) in zip(images, found):
        r.proposal_indices, r.scores, r.instance_peaks = idx, scores, peaks
        r.masks = r.proposals.masks(idx, out_shape=r.shape) if len(idx) else np.zeros((0, *r.shape), bool)
        r.proposals.release_caches()  # the ranking terms are cached on the record; the pixel caches can go


@torch.no_grad()
def cosaliency(
    net: CoSaliencyNet, image: np.ndarray, size: int, device: torch.device
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """One image through the trained network → (normalised input (1, 3, S, S), Z (hz, wz), S (H, W) at its size)."""
    x = net.normalize(to_input([image], size).to(device))
    out = net(x)
    full = F.interpolate(out.saliency[:, None], size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    return x, out.logits[0, 0].cpu().numpy(), full.clamp(0, 1).cpu().numpy().astype(np.float32)


def local_maxima(logits: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The 3 × 3 local maxima of Z ``(hz, wz)`` (spec §7.2) at or above ``level``, best first: ``(M, 2)`` (row, col)
    and their values ``(M,)`` (compared as :func:`cosegkit.ranking.peaks_in_use` compares them)."""
    peaks = find_peaks(torch.from_numpy(logits), window=3, threshold=float("-inf")).numpy()
    values = logits[peaks[:, 0], peaks[:, 1]] if len(peaks) else np.zeros(0, np.float32)
    keep = values >= level
    return peaks[keep], values[keep]


def add_peaks(images: list[ImageResult], net: CoSaliencyNet, config: Config) -> None:
    """Lower each image's ``peak_floor`` to ``config.ranking.peak_threshold``: the local maxima of Z between the
    two levels join ``peaks`` (after the others: best first still holds) with their heat maps (in place; new
    arrays, so copies made by ``dataclasses.replace`` are not changed). Proposals are left as they are."""
    device = next(net.parameters()).device
    twin = None if is_vit(net.backbone) else zplus_network(net)
    size = config.input_size_at_inference
    for r in images:
        level = peak_level(r.logits, config.ranking.peak_threshold)
        every, values = local_maxima(r.logits, level)
        new = values < r.peak_floor
        if new.any():
            x = net.normalize(to_input([r.image], size).to(device))
            heat = peak_heatmaps(twin if twin is not None else net, x, every[new], out_size=r.heatmaps.shape[1:])
            r.peaks = np.concatenate([r.peaks, every[new]])
            r.peak_values = np.concatenate([r.peak_values, values[new]])
            r.heatmaps = np.concatenate([r.heatmaps, heat.detach().cpu().numpy()])
            r.ranking_cache = {}
        r.peak_floor = level


def analyse_image(
    net: CoSaliencyNet,
    image: np.ndarray,
    name: str,
    config: Config,
    proposals=None,
    timings=None,
    zplus_net=None,
    prior: np.ndarray | None = None,
) -> ImageResult:
    """Stage 2 for one image, up to (not including) ranking: Z, S, peaks, heat maps, proposals.

    ``zplus_net``: ``prm.zplus_network(net)``, converted once per collection (built here when None).
    ``prior``: the image's saliency prior Ŝ (any resolution), kept at the working resolution.
    The peaks are the local maxima of Z at or above ``config.ranking.peak_threshold`` (``peak_floor``); each
    gets a heat map and, with ``proposals="sam"``, a prompt. :meth:`Result.rerank` adds peaks below it."""
    device = next(net.parameters()).device
    timings = timings if timings is not None else {}
    t0 = time.perf_counter()
    x, logits, saliency = cosaliency(net, image, config.input_size_at_inference, device)
    floor = peak_level(logits, config.ranking.peak_threshold)
    peaks, peak_values = local_maxima(logits, floor)
    t1 = time.perf_counter()
    if proposals is None:
        props = proposals_for(image, config, peaks, logits)  # config.proposals: hierarchy, sam or both
    else:
        props = as_proposals(proposals, image)
    t2 = time.perf_counter()
    if len(peaks):
        heat = (
            peak_heatmaps(zplus_net if zplus_net is not None else net, x, peaks, out_size=props.shape)
            .detach()
            .cpu()
            .numpy()
        )
    else:
        heat = np.zeros((0, *props.shape), np.float32)
    t3 = time.perf_counter()
    for key, dt in (("co-saliency", t1 - t0), ("proposals", t2 - t1), ("heat maps", t3 - t2)):
        timings[key] = timings.get(key, 0.0) + dt
    return ImageResult(
        name=name,
        image=image,
        logits=logits,
        saliency=saliency,
        saliency_work=resize_map(saliency, props.shape).clip(0, 1),
        peaks=peaks,
        peak_values=np.asarray(peak_values),
        heatmaps=heat,
        proposals=props,
        prior_work=None if prior is None else resize_map(np.asarray(prior, np.float32), props.shape).clip(0, 1),
        peak_floor=floor,
    )


def cosegment(
    images,
    config: Config | str | None = None,
    *,
    net: CoSaliencyNet | FitResult | None = None,
    proposals=None,
    saliency_maps=None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> Result:
    """Find and segment every instance of the common object in every image.

    Args:
        images: a folder, a list of paths, a list of (H, W, 3) uint8 arrays, or a :class:`Collection`.
        config: a :class:`Config` or a preset name (default: ``config.DEFAULT_PRESET``).
        net: an already trained network (or a :class:`FitResult`) — skips training.
        proposals: your own proposals per image: a list (one per image) of mask stacks (P, H, W) /
            :class:`Proposals`, or one callable ``image -> masks`` used for every image.
        saliency_maps: your own saliency priors (folder, list of maps or callable), see
            :func:`cosegkit.saliency.prior_maps`.
        checkpoint, resume: passed to :func:`cosegkit.train.fit`.

    Returns:
        :class:`Result`: per image masks (K, H, W), scores, peaks, heat maps, co-saliency, proposals.
    """
    if config is None or isinstance(config, str):
        config = preset(config or None)
    collection = images if isinstance(images, Collection) else load_collection(images)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    if net is None:
        fitted = fit(collection, config, checkpoint=checkpoint, resume=resume, user_maps=saliency_maps)
    elif isinstance(net, FitResult):
        fitted = net
    else:
        fitted = FitResult(net=net.eval(), config=config)
    timings["training"] = time.perf_counter() - t0

    per_image_proposals = proposals if isinstance(proposals, (list, tuple)) else [proposals] * len(collection)
    if len(per_image_proposals) != len(collection):
        raise ValueError(
            f"Got proposals for {len(per_image_proposals)} images but the collection has {len(collection)}."
        )
    t_convert = time.perf_counter()
    twin = None if is_vit(fitted.net.backbone) else zplus_network(fitted.net)  # the z⁺ copy of a CNN, converted once
    timings["heat maps"] = time.perf_counter() - t_convert
    priors = fitted.priors  # (N, S, S) from training; a network passed in bare needs them computed
    if priors is not None and len(priors) != len(collection):
        raise ValueError(
            f"The FitResult holds saliency priors for {len(priors)} images but the collection has {len(collection)}: "
            "pass the collection it was trained on, or the bare network (net=fitted.net) to compute the priors afresh."
        )
    if priors is None:
        t_prior = time.perf_counter()
        priors = compute_priors(collection, config, saliency_maps)
        timings["saliency prior"] = time.perf_counter() - t_prior
    results = []
    items = zip(collection.images, collection.names, per_image_proposals, priors)
    for image, name, props, prior in tqdm(list(items), desc="instances", unit="image", disable=not config.progress):
        results.append(
            analyse_image(
                fitted.net,
                image,
                name,
                config,
                proposals=props,
                timings=timings,
                zplus_net=twin,
                prior=prior.cpu().numpy(),
            )
        )
    t1 = time.perf_counter()
    select_all(results, config)
    timings["ranking"] = time.perf_counter() - t1
    return Result(images=results, config=config, fit=fitted, timings=timings, collection=collection)
