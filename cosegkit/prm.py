"""Peaks of the saliency map and peak back-propagation (spec §7, items 2–3).

Each local maximum (a *peak*) of the low-resolution logits Z is traced back to
the input image: which pixels made this peak fire? The answer is a heat map
per peak, Oⁱ (H, W), that the ranking step uses to pick one proposal per peak.

    Z (h, w) ──find_peaks──▶ peaks (M, 2) ──peak_backprop──▶ O (M, H, W)

**The z⁺ rule** (PRM, Zhou et al. 2018; excitation back-prop). A one-hot
signal starts at the peak and walks down the network. A convolution (or
linear layer) y = W x hands the signal g it receives at its output to its
input as

    R = x⁺ ⊙ W⁺ᵀ (g / z⁺),   x⁺ = x − min x,   W⁺ = max(W, 0),   z⁺ = W⁺ x⁺

so an output unit splits its signal among its inputs in proportion to their
positive contributions x⁺ᵢ W⁺ⱼᵢ. Without bias, and where z⁺ > 0, nothing is
lost: Σ R = Σ g (a random walk). Where z⁺ = 0 the signal stops.

Details, each measured or reasoned in the spec:

- ``min x`` is taken over the whole input of one image (all channels and
  positions); most layer inputs follow a ReLU and are already ≥ 0, the image
  and the outputs of linear projections are not.
- Batch norm is folded into the convolution before it, so its per-channel
  scale enters W *before* the positive part is taken (a negative BN scale
  flips which weights of that output channel count as positive).
- TF-"same" padded convolutions (EfficientNet-Lite): shift the input by its
  minimum first, then pad with zeros, so padding never carries signal.
- ReLU and max-pooling route the signal as their ordinary gradients.
  **ReLU6 routes like ReLU** (pass where the pre-activation > 0): its true
  gradient is zero above 6, which blocks exactly the most active units and
  loses ~75 % of the signal.
- Residual adds copy the signal to both branches (what autograd does);
  dropout and drop-path are identities in eval mode.
- A squeeze-excitation gate is a per-channel positive scale computed from the
  forward pass and then held constant; the z⁺ rule of a positive diagonal
  layer passes the signal through unchanged, which is what we do (equivalently
  the gate is folded into the next convolution).

**How it is computed.** :func:`zplus_network` makes a copy of the network in
which every convolution computes its ordinary output in the forward pass but
applies the z⁺ rule in the backward pass (a custom ``autograd.Function``
that caches x⁺, W⁺ and 1/z⁺; the rule is one ``conv_transpose2d``). One
forward pass of the single image then serves all M peaks, either as one
backward pass over the stack of M one-hot signals (``torch.func.vmap``: every
layer runs once on (M, ...) tensors — the fast choice on a GPU) or as M
backward passes from the same cached forward pass (faster on a CPU, measured
below). Both give the same maps.

Measured on a shared 2-core CPU (EfficientNet-Lite0, 448 × 448, M = 10, channels-last,
wall clock, machine quiet): per peak from the cached forward pass 0.85 s per image
(the z⁺ forward 0.14 s, then ~0.07 s per peak); batched 1.5 s; a separate forward
pass for every peak 2.7 s. The batched stacks of the first layers (10 × 96 × 224 × 224
floats) are fresh memory on every call, and the page faults cost more than batching
saves.

Example::

    net = CoSaliencyNet("simple", pretrained=False)
    x = net.normalize(images[:1])                          # (1, 3, H, W)
    peaks = find_peaks(net.logits(x)[0, 0])                # (M, 2) rows, cols on Z
    maps = heatmaps(net, x, peaks, out_size=(480, 640))    # (M, 480, 640)

    twin = zplus_network(net)                              # convert once, reuse for many images
    maps = peak_backprop(twin, x, peaks)                   # (M, H, W)
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "find_peaks",
    "tf_same_pads",
    "zplus_relevance",
    "zplus_conv2d",
    "fold_batchnorm",
    "ZPlusConv2d",
    "ZPlusLinear",
    "RoutedReLU6",
    "ConstantGate",
    "ZPlusNetwork",
    "zplus_network",
    "peak_backprop",
    "gradient_backprop",
    "heatmaps",
]


# ================================================================ 2-D peaks
def find_peaks(logits: torch.Tensor, window: int = 3, threshold: str | float | None = "median") -> torch.Tensor:
    """Local maxima of a 2-D map, strongest first: (h, w) → LongTensor (M, 2) of (row, col).

    A pixel is a peak when it is the largest value in its ``window × window``
    neighbourhood (clipped at the borders, so corners compare with fewer
    neighbours), rises above at least one of those neighbours, and its value
    is ≥ ``threshold``: ``"median"`` (the median of the map, halfway between
    the two middle values for an even count), a float, or ``None`` / ``"none"``
    for no threshold.

    Plateaus: every pixel of a flat top is returned when something lower
    surrounds it; a pixel whose whole window is flat is no peak (``window=1``:
    every pixel is a peak) — a constant
    map has none, and neither has the inside of a flat background (a trained
    network can map every background cell to the same feature, often zero, and
    so to one value of Z). Ties keep raster order.

    >>> find_peaks(torch.tensor([[0., 1., 0.], [0., 0., -1.], [2., 0., -1.]]), threshold=None)
    tensor([[2, 0],
            [0, 1]])
    """
    if logits.dim() > 2 and all(s == 1 for s in logits.shape[:-2]):
        logits = logits.reshape(logits.shape[-2:])
    if logits.dim() != 2:
        raise ValueError(f"find_peaks expects a 2-D map (h, w); got shape {tuple(logits.shape)}.")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number; got {window}.")
    values = logits.detach()
    values = values if values.is_floating_point() else values.float()
    # max_pool2d pads with −inf, so the border windows are simply clipped
    window_max = F.max_pool2d(values[None, None], window, stride=1, padding=window // 2)[0, 0]
    is_peak = values >= window_max
    if window > 1:  # (window 1 has no neighbours: every pixel is its own peak)
        window_min = -F.max_pool2d(-values[None, None], window, stride=1, padding=window // 2)[0, 0]
        is_peak &= window_min < values
    if threshold is not None and threshold != "none":
        if threshold == "median":
            threshold = float(torch.quantile(values.flatten(), 0.5))
        elif isinstance(threshold, str):
            raise ValueError(f'threshold must be "median", a number or None; got {threshold!r}.')
        is_peak &= values >= float(threshold)
    rows, cols = torch.nonzero(is_peak, as_tuple=True)
    order = torch.sort(values[rows, cols], descending=True, stable=True).indices
    return torch.stack([rows[order], cols[order]], dim=1).long()


# ================================================================ the z⁺ rule, one layer
def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pads(padding, kernel_size, dilation) -> tuple[int, int, int, int]:
    """Conv2d ``padding`` (int, (ph, pw), 4-tuple, "valid" or PyTorch's "same") → F.pad's (left, right, top, bottom)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":  # PyTorch's rule: the odd extra pixel goes right / bottom
            (kh, kw), (dh, dw) = _pair(kernel_size), _pair(dilation)
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        raise ValueError(f"Unknown padding {padding!r}.")
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        ph, pw = padding
        return (pw, pw, ph, ph)
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding must be an int, (ph, pw) or (left, right, top, bottom); got {padding!r}.")


def tf_same_pads(size: tuple[int, int], kernel_size, stride, dilation) -> tuple[int, int, int, int]:
    """TensorFlow "SAME" padding for an input of ``size`` (h, w) → (left, right, top, bottom); the extra pixel goes
    right / bottom.
    """
    pads = []
    for n, k, s, d in zip(size, _pair(kernel_size), _pair(stride), _pair(dilation)):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


def _pad(x: torch.Tensor, pads) -> torch.Tensor:
    """Zero padding (left, right, top, bottom); no copy when there is none."""
    return F.pad(x, pads) if any(pads) else x


def _shift(x: torch.Tensor) -> torch.Tensor:
    """x⁺ = x − min x, the minimum over everything of one sample: (B, ...) → (B, ...), ≥ 0."""
    return x - x.amin(dim=tuple(range(1, x.dim())), keepdim=True)


def _inverse(z_plus: torch.Tensor) -> torch.Tensor:
    """1 / z⁺ where z⁺ > 0, else 0: a unit that no positive input reaches passes nothing on."""
    positive = z_plus > 0
    return torch.where(positive, 1 / torch.where(positive, z_plus, 1.0), 0.0)  # the inner where keeps gradients finite


def _zplus_cache(x, weight, stride, pads, dilation, groups):
    """What the z⁺ rule needs from the forward pass: x⁺ (B, C_in, H, W), W⁺, 1/z⁺ (B, C_out, h, w).

    x⁺ is shifted *before* zero padding, so padded pixels carry no signal.
    """
    x_plus, w_plus = _shift(x), weight.clamp(min=0)
    z_plus = F.conv2d(_pad(x_plus, pads), w_plus, None, stride, 0, dilation, groups)
    return x_plus, w_plus, _inverse(z_plus)


def _zplus_spread(signal, x_plus, w_plus, inv_z, stride, pads, dilation, groups):
    """R = x⁺ ⊙ W⁺ᵀ (g / z⁺): signal g (B, C_out, h, w) → R (B, C_in, H, W), using the cached x⁺, W⁺, 1/z⁺.

    W⁺ᵀ is ``conv_transpose2d``; its output covers the padded input, whose padding is then cut off.
    """
    (sh, sw), (dh, dw) = stride, dilation
    (kh, kw), (h, w) = w_plus.shape[-2:], signal.shape[-2:]
    left, right, top, bottom = pads
    height, width = x_plus.shape[-2:]
    # with stride > 1 several input sizes give the same output size: ask for the padded input's
    extra_h = height + top + bottom - ((h - 1) * sh + dh * (kh - 1) + 1)
    extra_w = width + left + right - ((w - 1) * sw + dw * (kw - 1) + 1)
    spread = F.conv_transpose2d(signal * inv_z, w_plus, None, stride, 0, (extra_h, extra_w), groups, dilation)
    return x_plus * spread.narrow(-2, top, height).narrow(-1, left, width)


def zplus_relevance(
    x: torch.Tensor, weight: torch.Tensor, signal: torch.Tensor, stride=1, padding=0, dilation=1, groups=1
) -> torch.Tensor:
    """The z⁺ rule for one convolution: input x (B, C_in, H, W), signal g at its output (B, C_out, h, w) → R like x.

    R = x⁺ ⊙ W⁺ᵀ (g / z⁺) with x⁺ = x − min x (per image), W⁺ = max(W, 0),
    z⁺ = conv(x⁺, W⁺) (no bias). ``padding`` is anything ``nn.Conv2d`` takes, or
    (left, right, top, bottom); padded pixels are zeros of x⁺. R is linear in g,
    and Σ R = Σ g wherever z⁺ > 0.
    """
    pads, stride, dilation = _pads(padding, weight.shape[-2:], dilation), _pair(stride), _pair(dilation)
    cache = _zplus_cache(x, weight, stride, pads, dilation, groups)
    return _zplus_spread(signal, *cache, stride, pads, dilation, groups)


class _ZPlusConv2dFunction(torch.autograd.Function):
    """Forward: the ordinary convolution (plus the z⁺ cache). Backward: the z⁺ rule, not the gradient."""

    @staticmethod
    def forward(x, weight, bias, stride, pads, dilation, groups):
        out = F.conv2d(_pad(x, pads), weight, bias, stride, 0, dilation, groups)
        return (out, *_zplus_cache(x, weight, stride, pads, dilation, groups))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, _, _, stride, pads, dilation, groups = inputs
        _, *cache = output
        ctx.mark_non_differentiable(*cache)
        ctx.set_materialize_grads(False)  # no zero signals for the cache outputs
        ctx.save_for_backward(*cache)
        ctx.config = (stride, pads, dilation, groups)

    @staticmethod
    def backward(ctx, signal, *_):
        relevance = None if signal is None else _zplus_spread(signal, *ctx.saved_tensors, *ctx.config)
        return relevance, None, None, None, None, None, None


def zplus_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> torch.Tensor:
    """``F.conv2d`` whose backward pass applies the z⁺ rule: (B, C_in, H, W) → (B, C_out, h, w).

    ``padding`` as in :func:`zplus_relevance`. Only x receives a signal; weight and bias get none.
    """
    pads = _pads(padding, weight.shape[-2:], dilation)
    return _ZPlusConv2dFunction.apply(x, weight, bias, _pair(stride), pads, _pair(dilation), groups)[0]


class _ZPlusLinearFunction(torch.autograd.Function):
    """Forward: ``F.linear``. Backward: R = x⁺ ⊙ W⁺ᵀ (g / z⁺) with x⁺ = x − min x per sample."""

    @staticmethod
    def forward(x, weight, bias):
        x_plus, w_plus = _shift(x), weight.clamp(min=0)
        return F.linear(x, weight, bias), x_plus, w_plus, _inverse(F.linear(x_plus, w_plus))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, *cache = output
        ctx.mark_non_differentiable(*cache)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*cache)

    @staticmethod
    def backward(ctx, signal, *_):
        if signal is None:
            return None, None, None
        x_plus, w_plus, inv_z = ctx.saved_tensors
        return x_plus * ((signal * inv_z) @ w_plus), None, None


# ================================================================ the network's z⁺ twin
def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm):
    """Fold an eval-mode batch norm into the convolution before it → (weight, bias) of one convolution.

    BN(conv(x)) = conv(x; W·s) + (b − μ)·s + β with s = γ / sqrt(σ² + ε), per output channel.
    Shapes: weight (C_out, C_in/groups, kh, kw), bias (C_out,) or None.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"{type(bn).__name__} has no running statistics (track_running_stats=False), so it cannot be "
            "folded; peak back-propagation needs a network whose batch norms track running statistics."
        )
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bias is not None:
        shift = shift + bias * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return weight * scale.view(-1, *([1] * (weight.dim() - 1))), shift


def _is_tf_same(conv: nn.Module) -> bool:
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # timm is optional: without it there is no Conv2dSame to meet
        return False
    return isinstance(conv, Conv2dSame)


class ZPlusConv2d(nn.Module):
    """A convolution (BatchNorm possibly folded in) that applies the z⁺ rule when back-propagated.

    ``tf_same=True`` pads like TensorFlow's "SAME" (computed from each input's size).
    """

    def __init__(self, conv: nn.Conv2d, tf_same: bool = False):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise NotImplementedError(
                f"z⁺ rule: only zero padding is supported, not padding_mode={conv.padding_mode!r}."
            )
        self.register_buffer("weight", conv.weight.detach())  # shared with ``conv``: the twin is built from a copy
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach())
        self.stride, self.dilation, self.groups = _pair(conv.stride), _pair(conv.dilation), conv.groups
        self.tf_same = tf_same
        self.pads = None if tf_same else _pads(conv.padding, conv.kernel_size, conv.dilation)
        self.batchnorm_folded = False
        self.last_output = None  # kept only while a folded BatchNorm checks it follows this conv

    def fold(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        """Fold ``bn`` (which follows this convolution) into the weight and bias."""
        self.weight, self.bias = fold_batchnorm(self.weight, self.bias, bn)
        self.batchnorm_folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = (
            tf_same_pads(x.shape[-2:], self.weight.shape[-2:], self.stride, self.dilation)
            if self.tf_same
            else self.pads
        )
        out = _ZPlusConv2dFunction.apply(x, self.weight, self.bias, self.stride, pads, self.dilation, self.groups)[0]
        if self.batchnorm_folded:
            self.last_output = out
        return out

    def extra_repr(self) -> str:
        shape = tuple(self.weight.shape)
        return (
            f"weight={shape}, stride={self.stride}, groups={self.groups}, tf_same={self.tf_same}, "
            f"bn_folded={self.batchnorm_folded}"
        )


class ZPlusLinear(nn.Module):
    """``nn.Linear`` that applies the z⁺ rule when back-propagated: (B, F_in) → (B, F_out)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.register_buffer("weight", linear.weight.detach())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ZPlusLinearFunction.apply(x, self.weight, self.bias)[0]


class _FoldedBatchNorm(nn.Module):
    """Stands where a BatchNorm was after folding it into the convolution before it: the identity, plus a check."""

    def __init__(self, conv: ZPlusConv2d, name: str):
        super().__init__()
        self._conv = [conv]  # a list, so the conv is not registered twice as a sub-module
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self._conv[0]
        if x is not conv.last_output:
            raise RuntimeError(
                f"BatchNorm {self.name!r} was folded into the convolution registered just before it, but at run "
                "time its input is not that convolution's output. Peak back-propagation supports batch norms "
                "that directly follow a convolution (or stand alone with no convolution registered before them)."
            )
        conv.last_output = None
        return x


class RoutedReLU6(nn.Module):
    """ReLU6 forward, ReLU routing backward: the signal passes wherever the pre-activation is > 0.

    relu6(x) = relu(x) − relu(x − 6); detaching the second term keeps the forward value
    and gives the backward pass ReLU's gradient, so units saturated above 6 still pass signal.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) - F.relu(x - 6).detach()


class ConstantGate(nn.Module):
    """A squeeze-excitation block with its gate held constant: forward x · gate(x), signal passed through unchanged.

    The gate (B, C, 1, 1) is computed from the forward pass; a positive per-channel
    scale is a diagonal layer with positive weights, whose z⁺ rule gives R = g.
    """

    def __init__(self, se: nn.Module):
        super().__init__()
        self.se = se  # the original block, used (without gradient) to compute the gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            gated = self.se(x)
        return x + (gated - x).detach()


def _is_squeeze_excite(module: nn.Module) -> bool:
    return type(module).__name__ in {"SqueezeExcite", "SEModule", "SqueezeExcitation"}


_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.Flatten)
_PASS_THROUGH_NAMES = {"DropPath", "Identity"}  # timm's, matched by name to keep timm optional


def _convert(module: nn.Module, name: str = "") -> nn.Module:
    """The z⁺ version of one module (its children converted recursively, in place)."""
    if isinstance(module, nn.Conv2d):
        if type(module) is not nn.Conv2d and not _is_tf_same(module):
            raise NotImplementedError(
                f"Peak back-propagation has no rule for the Conv2d subclass {type(module).__name__} at {name!r}."
            )
        return ZPlusConv2d(module, tf_same=_is_tf_same(module))
    if isinstance(module, nn.Linear):
        return ZPlusLinear(module)
    if isinstance(module, nn.ReLU6):
        return RoutedReLU6()
    if isinstance(module, nn.ReLU):
        return nn.ReLU()  # never in place: the routing needs the pre-activation sign
    if _is_squeeze_excite(module):
        return ConstantGate(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        # no convolution right before it: a per-channel affine map, i.e. a 1×1 depthwise convolution
        identity = nn.Conv2d(module.num_features, module.num_features, 1, groups=module.num_features, bias=False)
        nn.init.ones_(identity.weight)
        standalone = ZPlusConv2d(identity.to(module.running_mean))
        standalone.fold(module)
        return nn.Sequential(standalone, *_batchnorm_extras(module, name))
    if isinstance(module, _PASS_THROUGH) or type(module).__name__ in _PASS_THROUGH_NAMES:
        return module
    children = list(module.named_children())
    if not children:
        raise NotImplementedError(
            f"Peak back-propagation has no rule for {type(module).__name__} at {name!r}. Supported layers: Conv2d "
            "(also timm Conv2dSame), Linear, BatchNorm, ReLU, ReLU6, MaxPool2d, Dropout, DropPath, Identity, "
            "squeeze-excitation."
        )
    previous = None  # the sibling converted just before
    for child_name, child in children:
        full_name = f"{name}.{child_name}" if name else child_name
        follows_conv = isinstance(previous, ZPlusConv2d) and not previous.batchnorm_folded
        if (
            isinstance(child, nn.modules.batchnorm._BatchNorm)
            and follows_conv
            and previous.weight.shape[0] == child.num_features
        ):
            previous.fold(child)
            new = nn.Sequential(_FoldedBatchNorm(previous, full_name), *_batchnorm_extras(child, full_name))
        else:
            new = _convert(child, full_name)
        module._modules[child_name] = new
        previous = new
    return module


def _batchnorm_extras(bn: nn.Module, name: str) -> list[nn.Module]:
    """What timm's BatchNormAct2d applies after normalising (dropout, activation), converted."""
    extras = [getattr(bn, attribute, None) for attribute in ("drop", "act")]
    return [
        _convert(extra, f"{name}.{attribute}") for extra, attribute in zip(extras, ("drop", "act")) if extra is not None
    ]


class ZPlusNetwork(nn.Module):
    """A network's z⁺ twin: same forward values; its backward pass is the z⁺ random walk.

    Build it once with :func:`zplus_network` and pass it to :func:`peak_backprop`
    for many images (building copies the network).
    """

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _logits_path(net: nn.Module) -> nn.Module:
    """The image → Z path: ``backbone`` then ``head`` for a :class:`CoSaliencyNet`, else the module itself."""
    if hasattr(net, "backbone") and hasattr(net, "head"):
        return nn.Sequential(net.backbone, net.head)
    return net


def zplus_network(net: nn.Module) -> ZPlusNetwork:
    """A converted deep copy (eval mode) of ``net``'s image → Z path; ``net`` is left untouched.

    ``net``: a :class:`~cosegkit.model.CoSaliencyNet` (backbone + head) or any module mapping
    (1, 3, H, W) to (1, 1, h, w) built from the supported layers.
    """
    if isinstance(net, ZPlusNetwork):
        return net
    body = copy.deepcopy(_logits_path(net)).eval()
    for parameter in body.parameters():
        parameter.requires_grad_(False)
    return ZPlusNetwork(_convert(body)).to(memory_format=torch.channels_last).eval()


# ================================================================ heat maps
def _check_inputs(image: torch.Tensor, peaks) -> torch.Tensor:
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(
            f"image must be one normalised image of shape (1, 3, H, W); got {tuple(image.shape)} "
            "(use image[None] or images[i:i+1])."
        )
    peaks = torch.as_tensor(peaks, dtype=torch.long, device=image.device)
    if peaks.numel() == 0:
        return peaks.reshape(0, 2)
    if peaks.dim() != 2 or peaks.shape[1] != 2:
        raise ValueError(f"peaks must be an (M, 2) array of (row, col) on Z; got shape {tuple(peaks.shape)}.")
    return peaks


def _one_hot_signals(logits: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) logits, (M, 2) peaks → (M, 1, 1, h, w) one-hot signals."""
    if logits.dim() != 4 or logits.shape[:2] != (1, 1):
        raise ValueError(
            f"the network must map one image to one map of logits (1, 1, h, w); got {tuple(logits.shape)}."
        )
    h, w = logits.shape[-2:]
    if len(peaks) and (peaks.min() < 0 or peaks[:, 0].max() >= h or peaks[:, 1].max() >= w):
        raise ValueError(f"peaks must be (row, col) inside the {h}×{w} logit map; got {peaks.tolist()}.")
    signals = torch.zeros(len(peaks), *logits.shape, dtype=logits.dtype, device=logits.device)
    signals[torch.arange(len(peaks)), 0, 0, peaks[:, 0], peaks[:, 1]] = 1.0
    return signals


def _backprop_signals(model: nn.Module, image: torch.Tensor, peaks: torch.Tensor, batched: bool | None) -> torch.Tensor:
    """Back-propagate one-hot signals at ``peaks`` of model(image) → (M, 3, H, W) at the image.

    One forward pass; then one backward pass over all M signals (``torch.func.vmap``
    runs every layer once on the (M, ...) stack) or one backward pass per peak.
    ``batched=None``: batched except on a CPU, where per peak was measured faster.
    """
    if batched is None:
        batched = image.device.type != "cpu"
    image = image.detach().contiguous(memory_format=torch.channels_last)  # faster convolutions on a CPU
    logits, pull_back = torch.func.vjp(model, image)
    signals = _one_hot_signals(logits, peaks)  # (M, 1, 1, h, w)
    if len(peaks) == 0:
        return image.new_zeros(0, *image.shape[1:])
    if batched:
        (at_image,) = torch.func.vmap(pull_back)(signals)
    else:
        at_image = torch.stack([pull_back(signal)[0] for signal in signals])
    return at_image[:, 0]


def peak_backprop(net: nn.Module, image: torch.Tensor, peaks, batched: bool | None = None) -> torch.Tensor:
    """z⁺ heat maps: normalised image (1, 3, H, W), peaks (M, 2) on Z → (M, H, W), ≥ 0.

    The signal of each peak at the input image, summed over the 3 channels, all
    from one forward pass. A peak that no positive input reaches (z⁺ = 0, e.g. a
    flat background plateau where every feature is off) gets an all-zero map. ``batched=True``: all peaks go
    down in one batched backward pass; ``False``: one backward pass per peak (less memory); ``None``:
    batched on a GPU, per peak on a CPU (faster there, see the module notes). Same
    maps either way. ``net`` may be a :class:`ZPlusNetwork` built once with
    :func:`zplus_network`; otherwise it is converted (copied) here.
    """
    peaks = _check_inputs(image, peaks)
    twin = zplus_network(net)
    return _backprop_signals(twin, image, peaks, batched).sum(dim=1)


def gradient_backprop(
    net: nn.Module, image: torch.Tensor, peaks, batched: bool | None = None, reduce: str = "abs"
) -> torch.Tensor:
    """Plain-gradient heat maps, for comparison with z⁺: (1, 3, H, W), (M, 2) → (M, H, W), ≥ 0.

    The gradient of Z at each peak with respect to the input image (the network in
    eval mode), summed over the 3 channels — how Z responds to brightening a pixel —
    then ``reduce``: ``"abs"`` (its magnitude) or ``"positive"`` (only pixels whose
    brightening raises the peak).
    """
    if reduce not in ("abs", "positive"):
        raise ValueError(f'reduce must be "abs" or "positive"; got {reduce!r}.')
    if isinstance(net, ZPlusNetwork):
        raise TypeError(
            "gradient_backprop needs the original network, not its z⁺ twin (whose backward pass is the z⁺ rule)."
        )
    peaks = _check_inputs(image, peaks)
    path = _logits_path(net)
    modes = {module: module.training for module in path.modules()}
    path.eval()
    try:
        gradient = _backprop_signals(path, image, peaks, batched).sum(dim=1)
    finally:
        for module, mode in modes.items():
            module.training = mode
    return gradient.abs() if reduce == "abs" else gradient.clamp(min=0)


def heatmaps(
    net: nn.Module,
    image: torch.Tensor,
    peaks,
    out_size: tuple[int, int] | None = None,
    method: str = "auto",
    batched: bool | None = None,
) -> torch.Tensor:
    """Heat map per peak, resized to ``out_size`` (h_out, w_out) (default: the input's H, W): → (M, h_out, w_out), ≥ 0.

    ``method``: ``"zplus"`` (:func:`peak_backprop`, the method for CNNs), ``"gradient"``
    (:func:`gradient_backprop`), ``"walk"`` (:func:`cosegkit.vit.feature_walk`, the method for the ViT
    backbone: a random walk on its feature grid from the peak), ``"rollout"``
    (:func:`cosegkit.vit.attention_rollout`: a random walk down the ViT's attention, for comparison) or
    ``"auto"``: walk for a ViT backbone, z⁺ otherwise.
    Resizing is bilinear (the original image's size undoes the network's resize); maps are
    not normalised here (the ranking does that).
    """
    from .vit import is_vit, rollout_heatmaps, walk_heatmaps

    if method == "auto":
        method = "walk" if is_vit(getattr(net, "backbone", None)) else "zplus"
    if method in ("walk", "rollout"):
        if not is_vit(getattr(net, "backbone", None)):
            raise ValueError(f'method="{method}" needs a network with the ViT backbone (backbone="dinov2_vits14").')
        build = walk_heatmaps if method == "walk" else rollout_heatmaps
        return build(net.backbone, image, _check_inputs(image, peaks).cpu(), out_size)
    if method == "zplus":
        maps = peak_backprop(net, image, peaks, batched=batched)
    elif method == "gradient":
        maps = gradient_backprop(net, image, peaks, batched=batched)
    else:
        raise ValueError(f'method must be "auto", "zplus", "walk", "rollout" or "gradient"; got {method!r}.')
    if out_size is not None and tuple(out_size) != tuple(maps.shape[-2:]):
        if len(maps):
            maps = F.interpolate(maps[:, None], size=tuple(out_size), mode="bilinear", align_corners=False)[:, 0]
        else:
            maps = maps.new_zeros(0, *out_size)
    return maps.clamp(min=0)
