"""Peaks and peak back-propagation: hand-worked z⁺ walks, the one-layer rule against a dense
matrix, BN folding, ReLU6 routing, localisation on two blobs, batched = per-peak on real backbones."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cosegkit.model import CoSaliencyNet
from cosegkit.prm import (
    ConstantGate,
    RoutedReLU6,
    ZPlusConv2d,
    ZPlusLinear,
    find_peaks,
    fold_batchnorm,
    gradient_backprop,
    heatmaps,
    peak_backprop,
    tf_same_pads,
    zplus_conv2d,
    zplus_network,
    zplus_relevance,
)


# ---------------------------------------------------------------- find_peaks
def test_find_peaks_known_maxima_sorted_by_value():
    z = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 5.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 7.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    z[0, 4] = 3.0  # a corner: compared with its 3 neighbours only (the window is clipped)
    z[4, 0] = -1.0  # a local maximum? No: its neighbours are 0
    peaks = find_peaks(z, threshold=1.0)
    assert peaks.dtype == torch.long
    assert peaks.tolist() == [[3, 3], [1, 1], [0, 4]]


def test_find_peaks_window_matters():
    z = torch.zeros(5, 5)
    z[1, 1], z[3, 3] = 5.0, 7.0  # two cells apart: both peaks in 3×3, only the larger in 5×5
    assert find_peaks(z, window=3, threshold=1.0).tolist() == [[3, 3], [1, 1]]
    assert find_peaks(z, window=5, threshold=1.0).tolist() == [[3, 3]]


def test_find_peaks_plateau_returns_every_pixel_of_a_flat_maximum():
    z = torch.zeros(4, 4)
    z[1, 1] = z[1, 2] = 2.0  # a flat top of two pixels
    assert find_peaks(z, threshold=1.0).tolist() == [[1, 1], [1, 2]]  # ties keep raster order


def test_find_peaks_flat_windows_are_no_peaks():
    assert len(find_peaks(torch.ones(3, 4), threshold=None)) == 0  # a constant map has no peak
    # a flat background at −3 (every background feature zero) with one object peak and one dip:
    # only the object is a peak, and the background cells next to the dip, which they rise above
    z = torch.full((6, 6), -3.0)
    z[1, 1], z[4, 4] = 5.0, -3.5
    assert find_peaks(z, threshold=None).tolist()[0] == [1, 1]
    dip_neighbours = {(r, c) for r in range(3, 6) for c in range(3, 6)} - {(4, 4)}
    assert {tuple(p) for p in find_peaks(z, threshold=None).tolist()[1:]} == dip_neighbours
    # with the median threshold the object peak stays (the median is the flat background's value)
    assert find_peaks(z).tolist()[0] == [1, 1]


def test_find_peaks_median_threshold():
    # four local maxima (window 3): 9 at (0, 0), 8 at (0, 3), 1 at (3, 0), 2 at (3, 3);
    # median of the 16 values = (1 + 1) / 2 = 1 → the peak of value 1 stays, none below it
    z = torch.tensor(
        [
            [9.0, 0.0, 0.0, 8.0],
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0, 1.0],
            [1.0, 0.5, 1.0, 2.0],
        ]
    )
    # (2, 0), (2, 1), (3, 0) are plateau pixels of value 1 whose windows hold nothing larger;
    # (2, 2) and (3, 2) see the 2 at (3, 3)
    assert float(torch.quantile(z.flatten(), 0.5)) == 1.0
    assert find_peaks(z).tolist() == [[0, 0], [0, 3], [3, 3], [2, 0], [2, 1], [3, 0]]  # threshold="median"
    assert find_peaks(z, threshold=1.5).tolist() == [[0, 0], [0, 3], [3, 3]]
    z[2:, :] -= 5  # now the median is 0 and the bottom rows are below it
    assert find_peaks(z).tolist() == [[0, 0], [0, 3]]


def test_find_peaks_accepts_leading_singletons_and_rejects_bad_input():
    z = torch.zeros(1, 1, 3, 3)
    z[0, 0, 2, 1] = 1.0
    assert find_peaks(z, threshold=0.5).tolist() == [[2, 1]]
    with pytest.raises(ValueError, match="2-D map"):
        find_peaks(torch.zeros(2, 3, 3))
    border = -torch.ones(4, 5)
    border[0, 4] = -0.5  # the largest value sits in a corner of an all-negative map
    assert find_peaks(border, threshold=None)[0].tolist() == [0, 4]
    with pytest.raises(ValueError, match="odd"):
        find_peaks(torch.zeros(3, 3), window=2)


# ---------------------------------------------------------------- a z⁺ walk by hand
def tiny_net() -> nn.Sequential:
    """1-channel 3×3 image → 2×2 conv (2 channels, mixed signs) → ReLU → 1×1 head [1, 3]."""
    conv = nn.Conv2d(1, 2, kernel_size=2)
    head = nn.Conv2d(2, 1, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]], [[[-1.0, 1.0], [1.0, 1.0]]]]))
        conv.bias.copy_(torch.tensor([0.0, -1.0]))
        head.weight.copy_(torch.tensor([1.0, 3.0]).view(1, 2, 1, 1))
        head.bias.fill_(0.5)
    return nn.Sequential(conv, nn.ReLU(), head)


TINY_IMAGE = torch.tensor([[1.0, -1.0, 2.0], [3.0, 1.0, 0.0], [0.0, 2.0, 1.0]]).view(1, 1, 3, 3)


def test_tiny_net_forward_is_what_the_hand_computation_assumes():
    # conv a (W = [[1, −1], [0, 2]], b = 0): windows → 4, −3, 6, 3 → ReLU → [[4, 0], [6, 3]]
    # conv b (W = [[−1, 1], [1, 1]], b = −1): → 1, 3, −1, 1 → ReLU → [[1, 3], [0, 1]]
    # Z = a + 3 b + 0.5 = [[7.5, 9.5], [6.5, 6.5]]
    z = tiny_net()(TINY_IMAGE)
    assert torch.equal(z[0, 0], torch.tensor([[7.5, 9.5], [6.5, 6.5]]))
    assert torch.equal(zplus_network(tiny_net())(TINY_IMAGE), z)


def test_tiny_net_zplus_heat_maps_by_hand():
    # x⁺ = x − min x = x + 1 = [[2, 0, 3], [4, 2, 1], [1, 3, 2]];  W_a⁺ = [[1, 0], [0, 2]], W_b⁺ = [[0, 1], [1, 1]]
    # Peak (0, 0). Head: z⁺ = 1·4 + 3·1 = 7 → a gets 4/7, b gets 3/7 (ReLU passes: both pre-activations > 0).
    #   a: window x⁺ [[2, 0], [4, 2]], z⁺ = 2 + 2·2 = 6 → (0,0): 2·1·(4/7)/6 = 8/42, (1,1): 2·2·(4/7)/6 = 16/42
    #   b: z⁺ = 0·1 + 4·1 + 2·1 = 6 → (0,1): 0, (1,0): 4·(3/7)/6 = 12/42, (1,1): 2·(3/7)/6 = 6/42
    #   → [[8, 0, 0], [12, 22, 0], [0, 0, 0]] / 42, summing to 1 (nothing lost).
    # Peak (0, 1). Head: a = 0 there, so b gets 3·3/9 = 1.
    #   b: window x⁺ [[0, 3], [2, 1]], z⁺ = 3 + 2 + 1 = 6 → (0,2): 3/6, (1,1): 2/6, (1,2): 1/6
    expected = torch.zeros(2, 3, 3)
    expected[0] = torch.tensor([[8.0, 0.0, 0.0], [12.0, 22.0, 0.0], [0.0, 0.0, 0.0]]) / 42
    expected[1] = torch.tensor([[0.0, 0.0, 3.0], [0.0, 2.0, 1.0], [0.0, 0.0, 0.0]]) / 6
    net = tiny_net()
    maps = peak_backprop(net, TINY_IMAGE, torch.tensor([[0, 0], [0, 1]]), batched=True)
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(
        peak_backprop(net, TINY_IMAGE, [[0, 1], [0, 0]], batched=False), expected.flip(0), rtol=0, atol=1e-7
    )


def test_tiny_net_gradient_by_hand():
    # ∂Z(0,0)/∂x = W_a + 3 W_b on the top-left 2×2 window = [[1−3, −1+3], [0+3, 2+3]] = [[−2, 2], [3, 5]]
    grad = torch.tensor([[-2.0, 2.0, 0.0], [3.0, 5.0, 0.0], [0.0, 0.0, 0.0]])
    net = tiny_net()
    torch.testing.assert_close(gradient_backprop(net, TINY_IMAGE, [[0, 0]])[0], grad.abs())
    torch.testing.assert_close(gradient_backprop(net, TINY_IMAGE, [[0, 0]], reduce="positive")[0], grad.clamp(min=0))


# ---------------------------------------------------------------- one layer: the rule against a dense matrix
def dense_zplus(x, weight, signal, stride, pads, dilation, groups):
    """The z⁺ rule with the convolution as an explicit matrix A (out × in): R = x⁺ ⊙ A⁺ᵀ (g / z⁺), z⁺ = A⁺ x⁺."""
    b, c, h, w = x.shape
    n = c * h * w
    basis = torch.eye(n, dtype=x.dtype).view(n, c, h, w)
    columns = F.conv2d(F.pad(basis, pads), weight.clamp(min=0), None, stride, 0, dilation, groups)  # (n, C_out, h', w')
    a_plus = columns.reshape(n, -1).T  # (out, in)
    x_plus = (x - x.amin(dim=(1, 2, 3), keepdim=True)).reshape(b, n)
    z_plus = x_plus @ a_plus.T
    ratio = torch.where(z_plus > 0, signal.reshape(b, -1) / z_plus.clamp(min=1e-300), torch.zeros_like(z_plus))
    return (x_plus * (ratio @ a_plus)).view(b, c, h, w)


CONV_CASES = [  # (C_in, C_out, kernel, stride, padding as (left, right, top, bottom), dilation, groups, (H, W))
    (3, 4, 3, 1, (1, 1, 1, 1), 1, 1, (7, 6)),
    (4, 6, 3, 2, (1, 1, 1, 1), 1, 2, (8, 9)),  # stride 2, groups 2
    (4, 4, 3, 2, (0, 1, 0, 1), 1, 4, (8, 8)),  # depthwise, TF-"same" (extra pixel right / bottom)
    (4, 4, 5, 2, (1, 2, 1, 2), 1, 4, (7, 8)),  # odd size, 5×5, asymmetric
    (2, 3, 2, 1, (0, 0, 0, 0), 1, 1, (5, 5)),  # even kernel, no padding
    (2, 2, 3, 1, (2, 2, 2, 2), 2, 1, (6, 6)),  # dilation 2
]


@pytest.mark.parametrize("c_in, c_out, k, stride, pads, dilation, groups, size", CONV_CASES)
def test_zplus_rule_matches_dense_matrix(c_in, c_out, k, stride, pads, dilation, groups, size):
    gen = torch.Generator().manual_seed(k * 10 + stride + groups)
    x = torch.randn(2, c_in, *size, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_out, c_in // groups, k, k, generator=gen, dtype=torch.float64)
    out_shape = F.conv2d(F.pad(x, pads), weight, None, stride, 0, dilation, groups).shape
    signal = torch.rand(out_shape, generator=gen, dtype=torch.float64)

    expected = torch.stack(
        [dense_zplus(x[i : i + 1], weight, signal[i : i + 1], stride, pads, dilation, groups)[0] for i in range(2)]
    )
    got = zplus_relevance(x, weight, signal, stride, pads, dilation, groups)
    torch.testing.assert_close(got, expected)

    # the autograd route: forward is the ordinary convolution, backward is the rule
    x_var = x.clone().requires_grad_(True)
    bias = torch.randn(c_out, generator=gen, dtype=torch.float64)
    out = zplus_conv2d(x_var, weight, bias, stride, pads, dilation, groups)
    torch.testing.assert_close(out, F.conv2d(F.pad(x, pads), weight, bias, stride, 0, dilation, groups))
    (backward,) = torch.autograd.grad(out, x_var, signal)
    torch.testing.assert_close(backward, expected)


def test_zplus_conv_module_with_tf_same_padding_matches_dense_matrix():
    timm_layers = pytest.importorskip("timm.layers")
    conv = timm_layers.Conv2dSame(3, 3, 3, stride=2, groups=3, bias=False).double()
    x = torch.randn(1, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    out = ZPlusConv2d(conv, tf_same=True)(x)
    torch.testing.assert_close(out, conv(x))
    signal = torch.rand_like(out)
    pads = tf_same_pads((9, 8), (3, 3), (2, 2), (1, 1))
    assert pads == (0, 1, 1, 1)  # W: 8 → total 1, all on the right; H: 9 → total 2, split
    (got,) = torch.autograd.grad(out, x, signal)
    torch.testing.assert_close(got, dense_zplus(x.detach(), conv.weight.detach(), signal, 2, pads, 1, 3))


def test_zplus_rule_is_linear_and_conserves_signal():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 10, 10, generator=gen, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, generator=gen, dtype=torch.float64)
    g1, g2 = torch.rand(2, 1, 6, 5, 5, generator=gen, dtype=torch.float64)
    rule = lambda g: zplus_relevance(x, weight, g, stride=2, padding=1)  # noqa: E731
    torch.testing.assert_close(rule(2 * g1 - 3 * g2), 2 * rule(g1) - 3 * rule(g2))
    # Σ R = Σ g over the outputs that some positive input reaches (z⁺ > 0)
    x_plus = x - x.min()
    z_plus = F.conv2d(x_plus, weight.clamp(min=0), None, 2, 1)
    assert (z_plus > 0).float().mean() > 0.9
    torch.testing.assert_close(rule(g1).sum(), g1[z_plus > 0].sum())


def test_zplus_rule_gradcheck():
    """The rule as a function of (x, signal) is smooth away from ties: its autograd derivative matches finite
    differences.
    """
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 5, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    weight = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    weight[:, :, 1, 1] = weight[:, :, 1, 1].abs() + 0.5  # every output has a positive centre tap
    signal = torch.rand(1, 3, 3, 3, generator=gen, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, g: zplus_relevance(x, weight, g, stride=2, padding=1), (x, signal), fast_mode=True
    )


def test_zplus_linear_layer_by_hand():
    # x = [−1, 1, 3] → x⁺ = [0, 2, 4];  W = [[1, −1, 2], [0.5, 1, −3]] → W⁺ = [[1, 0, 2], [0.5, 1, 0]]
    # z⁺ = [0·1 + 2·0 + 4·2, 0·0.5 + 2·1 + 4·0] = [8, 2];  g = [1, 4] → g / z⁺ = [1/8, 2]
    # R = x⁺ ⊙ W⁺ᵀ (g / z⁺) = [0, 2, 4] ⊙ [1/8 + 1, 0 + 2, 2/8 + 0] = [0, 4, 1]  (Σ R = Σ g = 5)
    linear = nn.Linear(3, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -1.0, 2.0], [0.5, 1.0, -3.0]]))
    x = torch.tensor([[-1.0, 1.0, 3.0]], requires_grad=True)
    out = ZPlusLinear(linear)(x)
    torch.testing.assert_close(out, linear(x))
    (relevance,) = torch.autograd.grad(out, x, torch.tensor([[1.0, 4.0]]))
    torch.testing.assert_close(relevance, torch.tensor([[0.0, 4.0, 1.0]]))


# ---------------------------------------------------------------- batch norm folding
def test_fold_batchnorm_equals_conv_then_bn():
    torch.manual_seed(0)
    for bias in (False, True):
        conv = nn.Conv2d(3, 5, 3, padding=1, bias=bias)
        bn = nn.BatchNorm2d(5)
        with torch.no_grad():
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()  # some scales negative
            bn.bias.normal_()
        bn.eval()
        x = torch.randn(2, 3, 6, 6)
        weight, shift = fold_batchnorm(conv.weight, conv.bias, bn)
        torch.testing.assert_close(F.conv2d(x, weight, shift, padding=1), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_negative_bn_scale_flips_which_weights_count():
    # conv weights all negative, BN scale −1: the folded weights are positive, so the signal passes.
    conv = nn.Conv2d(1, 1, 2, bias=False)
    bn = nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        conv.weight.copy_(-torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        bn.weight.fill_(-1.0)
    x = torch.tensor([[[[1.0, 2.0, 0.0], [1.0, 0.0, 3.0], [2.0, 1.0, 1.0]]]])
    maps = peak_backprop(nn.Sequential(conv, bn), x, [[0, 0]])
    # folded W = +[[1, 2], [3, 4]] (·1/sqrt(1 + ε)); x⁺ = x (min 0); window [[1, 2], [1, 0]] → 1, 4, 3, 0 over 8
    expected = torch.tensor([[1.0, 4.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]) / 8
    torch.testing.assert_close(maps[0], expected)


def test_bn_that_does_not_follow_its_conv_is_caught():
    class Odd(nn.Module):  # conv and bn registered in order, but the forward puts a ReLU between them
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)

        def forward(self, x):
            return self.bn(torch.relu(self.conv(x)))

    with pytest.raises(RuntimeError, match="directly follow"):
        peak_backprop(Odd(), torch.rand(1, 1, 3, 3), [[0, 0]])


def test_standalone_batchnorm_is_a_per_channel_affine_layer():
    bn = nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0]))
        bn.weight.copy_(torch.tensor([2.0, 0.5]))
    head = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        head.weight.fill_(1.0)
    net = nn.Sequential(bn, head)
    x = torch.rand(1, 2, 4, 4)
    twin = zplus_network(net)
    torch.testing.assert_close(twin(x), net(x))
    maps = peak_backprop(twin, x, [[1, 2]])
    assert maps[0].sum() == pytest.approx(1.0, abs=1e-5) and maps[0, 1, 2] == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- activations
def test_relu6_routes_like_relu_and_saturated_units_pass_signal():
    x = torch.linspace(-3, 9, 25, requires_grad=True)
    y = RoutedReLU6()(x)
    torch.testing.assert_close(y, F.relu6(x))
    (routed,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(routed, (x > 0).float())  # 1 above 6 too, where ReLU6's gradient is 0

    conv = nn.Conv2d(1, 1, 1, bias=False)
    head = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(10.0)  # pre-activation 10·x > 6 wherever x > 0.6
        head.weight.fill_(1.0)
    net = nn.Sequential(conv, nn.ReLU6(), head)
    image = torch.tensor([[[[0.0, 0.8], [1.0, 0.9]]]])
    zplus = peak_backprop(net, image, [[1, 0]])
    assert zplus[0, 1, 0] == pytest.approx(1.0)  # the saturated unit passes all of its signal
    assert gradient_backprop(net, image, [[1, 0]])[0].abs().sum() == 0  # ReLU6's true gradient passes none


def test_squeeze_excite_gate_is_a_constant_scale_folded_into_the_next_conv():
    blocks = pytest.importorskip("timm.models._efficientnet_blocks")
    torch.manual_seed(0)
    conv, head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 1, 1)
    se = blocks.SqueezeExcite(4, rd_ratio=0.5).eval()
    with torch.no_grad():
        head.weight.abs_()
    net = nn.Sequential(conv, nn.ReLU(), se, head)
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():  # the gate of this image: sigmoid(expand(relu(reduce(mean of the features)))), (4,)
        pooled = torch.relu(conv(x)).mean(dim=(2, 3), keepdim=True)
        gate = se.gate(se.conv_expand(se.act1(se.conv_reduce(pooled)))).view(4)
    folded_head = nn.Conv2d(4, 1, 1)
    with torch.no_grad():
        folded_head.weight.copy_(head.weight * gate.view(1, 4, 1, 1))
        folded_head.bias.copy_(head.bias)
    folded = nn.Sequential(conv, nn.ReLU(), folded_head)
    twin = zplus_network(net)
    assert any(isinstance(m, ConstantGate) for m in twin.modules())
    torch.testing.assert_close(twin(x), net(x))
    peaks = [[1, 1], [4, 2]]
    torch.testing.assert_close(peak_backprop(twin, x, peaks), peak_backprop(folded, x, peaks))


def test_unsupported_layer_is_named():
    with pytest.raises(NotImplementedError, match="SiLU"):
        zplus_network(nn.Sequential(nn.Conv2d(3, 1, 1), nn.SiLU()))


# ---------------------------------------------------------------- localisation
def two_blob_net() -> nn.Sequential:
    """Features that respond to brightness: smoothing convs (mostly positive weights, no bias), ReLU, max-pooling.

    Every unit fires on the textured background too, most strongly on bright blobs.
    """
    gen = torch.Generator().manual_seed(3)
    conv1, conv2, head = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 1, 1)
    with torch.no_grad():
        conv1.weight.copy_((1 + 0.5 * torch.randn(4, 3, 3, 3, generator=gen)) / 27)  # mostly positive, some not
        conv1.bias.zero_()
        conv2.weight.copy_((1 + 0.5 * torch.randn(4, 4, 3, 3, generator=gen)) / 36)
        conv2.bias.zero_()
        head.weight.fill_(1.0)
    return nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2), conv2, nn.ReLU(), nn.MaxPool2d(2), head)


def test_heat_map_of_a_peak_lies_on_its_blob():
    torch.manual_seed(0)
    image = 0.3 * torch.rand(1, 3, 32, 32)  # textured background: every pixel has x⁺ > 0
    blob_a = torch.zeros(32, 32, dtype=torch.bool)
    blob_a[3:11, 18:26] = True  # top right (a row/col swap would look bottom left)
    blob_b = torch.zeros(32, 32, dtype=torch.bool)
    blob_b[20:28, 4:12] = True  # bottom left
    image[:, :, blob_a | blob_b] = 1.0
    net = two_blob_net()
    z = net(image)[0, 0]  # (8, 8)
    peaks = find_peaks(z)
    assert len(peaks) >= 2
    centre = torch.tensor([7 / 4, 22 / 4]) - 0.5  # blob A's centre on the 8×8 grid
    peak_a = peaks[((peaks.float() - centre) ** 2).sum(1).argmin()]
    assert ((peak_a.float() - centre).abs() <= 1.5).all(), "the map should peak over blob A"
    maps = peak_backprop(net, image, peak_a[None])
    share = maps[0] / maps[0].sum()
    assert share[blob_a].sum() > 0.9
    assert share[blob_b].sum() < 0.01


def test_heatmaps_resize_and_methods():
    net = two_blob_net()
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, 4:12, 20:28] = 1.0
    peaks = find_peaks(net(image)[0, 0])[:1]
    same = heatmaps(net, image, peaks)
    torch.testing.assert_close(same, peak_backprop(net, image, peaks))
    big = heatmaps(net, image, peaks, out_size=(64, 96))
    assert big.shape == (1, 64, 96) and big.min() >= 0
    rows, cols = torch.nonzero(big[0] > 0.5 * big[0].max(), as_tuple=True)
    assert rows.min() >= 6 and rows.max() <= 26 and cols.min() >= 58 and cols.max() <= 86  # blob ×(2, 3)
    grad = heatmaps(net, image, peaks, out_size=(64, 96), method="gradient")
    assert grad.shape == (1, 64, 96) and grad.min() >= 0
    assert heatmaps(net, image, torch.zeros(0, 2, dtype=torch.long), out_size=(5, 7)).shape == (0, 5, 7)
    with pytest.raises(ValueError, match="method"):
        heatmaps(net, image, peaks, method="cam")
    twin = zplus_network(net)  # built once, reused: the same maps
    torch.testing.assert_close(heatmaps(twin, image, peaks, out_size=(64, 96)), big)
    with pytest.raises(TypeError, match="original network"):
        heatmaps(twin, image, peaks, method="gradient")


def test_bad_image_and_peaks_get_clear_errors():
    net = tiny_net()
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        peak_backprop(net, TINY_IMAGE.expand(2, 1, 3, 3), [[0, 0]])
    with pytest.raises(ValueError, match="inside the 2×2"):
        peak_backprop(net, TINY_IMAGE, [[0, 2]])
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        peak_backprop(net, TINY_IMAGE, [[0, 0, 1]])
    assert peak_backprop(net, TINY_IMAGE, []).shape == (0, 3, 3)


# ---------------------------------------------------------------- real backbones: batched = per peak, net untouched
def _random_head(net: CoSaliencyNet, seed: int) -> CoSaliencyNet:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=gen))
    return net.eval()


def _check_backbone(net: CoSaliencyNet, size: tuple[int, int], check_untouched: bool = True):
    torch.manual_seed(0)
    image = torch.randn(1, 3, *size)
    if check_untouched:
        state = {k: v.clone() for k, v in net.state_dict().items()}
        modules = [type(m) for m in net.modules()]
    twin = zplus_network(net)
    with torch.no_grad():
        torch.testing.assert_close(twin(image), net.logits(image), rtol=1e-4, atol=1e-4)
    peaks = find_peaks(net.logits(image)[0, 0], window=1, threshold=None)  # every cell of Z
    assert len(peaks) >= 3
    batched = peak_backprop(twin, image, peaks, batched=True)
    per_peak = peak_backprop(twin, image, peaks, batched=False)
    assert batched.shape == (len(peaks), *size) and batched.min() >= 0
    assert (batched.sum(dim=(1, 2)) > 0).all()
    torch.testing.assert_close(batched, per_peak, rtol=1e-4, atol=1e-6 * float(per_peak.max()))
    if check_untouched:
        one = peak_backprop(net, image, peaks[1:2])  # converts a fresh copy
        torch.testing.assert_close(one[0], batched[1], rtol=1e-4, atol=1e-6 * float(per_peak.max()))
        assert [type(m) for m in net.modules()] == modules
        assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    return batched


def test_batched_equals_per_peak_simple():
    net = _random_head(CoSaliencyNet("simple", pretrained=False), 0)
    maps = _check_backbone(net, (64, 96))
    # no bias in z⁺, ReLU after every conv, max-pooling: nothing is lost on the way down
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(len(maps)), rtol=1e-4, atol=1e-4)


def test_batched_equals_per_peak_efficientnet_lite0_real_weights():
    net = _random_head(CoSaliencyNet("efficientnet_lite0", pretrained=True), 1)
    was_training = [m.training for m in net.modules()]
    _check_backbone(net, (64, 96))
    assert [m.training for m in net.modules()] == was_training
    gradient = gradient_backprop(net, torch.randn(1, 3, 64, 64), [[0, 0], [1, 1]])
    assert gradient.shape == (2, 64, 64) and (gradient.sum(dim=(1, 2)) > 0).all()


def test_batched_equals_per_peak_vgg16_random_weights():
    net = _random_head(CoSaliencyNet("vgg16", pretrained=False), 2)
    _check_backbone(net, (64, 64), check_untouched=False)  # 4 peaks; VGG is slow on a CPU
