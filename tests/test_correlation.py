import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cosegkit.correlation import (
    center_features,
    co_peaks,
    correlation_features,
    correlation_tensor,
    max_filter_4d,
    normalize_features,
    saliency_guided,
)


def as_map(vectors, h=2, w=2):
    """List of h·w feature vectors in row-major order → (1, C, h, w)."""
    return torch.tensor(vectors, dtype=torch.float64).T.reshape(1, -1, h, w)


def brute_max_filter(x, window):
    """Reference: maximum over every offset of the window⁴ neighbourhood, outside = -inf."""
    r = window // 2
    sizes = x.shape[1:]
    padded = F.pad(x, (r, r) * 4, value=float("-inf"))
    out = torch.full_like(x, float("-inf"))
    for a, b, c, d in itertools.product(range(window), repeat=4):
        out = torch.maximum(out, padded[:, a : a + sizes[0], b : b + sizes[1], c : c + sizes[2], d : d + sizes[3]])
    return out


def line(values, axis=4):
    """A 1-D list of values laid along one spatial axis of a (1, h, w, h', w') tensor."""
    shape = [1, 1, 1, 1, 1]
    shape[axis] = len(values)
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


# ----------------------------------------------------------------- normalize_features


def test_normalize_features_by_hand():
    f = torch.zeros(1, 2, 1, 2, dtype=torch.float64)
    f[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # ‖f‖² = 25; the other location stays zero
    out = normalize_features(f, eps=0.01)
    expected = torch.tensor([3.0, 4.0], dtype=torch.float64) / math.sqrt(25.01)
    assert torch.allclose(out[0, :, 0, 0], expected)
    assert torch.equal(out[0, :, 0, 1], torch.zeros(2, dtype=torch.float64))
    # eps changes the result: with eps = 0 the vector would have norm exactly 1
    assert out[0, :, 0, 0].norm() < 1
    assert torch.allclose(normalize_features(f, eps=0.0)[0, :, 0, 0].norm(), torch.tensor(1.0, dtype=torch.float64))


# ----------------------------------------------------------------- center_features


def test_center_features_by_hand_and_mean_over_the_whole_batch():
    # two maps of one cell each plus a second cell: channel values 1, 3 (map 0) and 5, 7 (map 1), mean 4
    f = torch.tensor([[[[1.0, 3.0]]], [[[5.0, 7.0]]]], dtype=torch.float64)  # (2, 1, 1, 2)
    assert center_features(f).flatten().tolist() == [-3.0, -1.0, 1.0, 3.0]
    # per channel: the second channel's mean (10) is removed on its own
    g = torch.stack([f[:, 0], 10 + f[:, 0]], dim=1)  # (2, 2, 1, 2)
    assert torch.allclose(center_features(g).mean(dim=(0, 2, 3)), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(center_features(g)[:, 1], center_features(f)[:, 0])


def test_center_features_passes_the_gradient_unchanged():
    # μ carries no gradient: d/df Σ w · (f − μ) = w (it would be w − mean(w) if μ were differentiated)
    f = torch.rand(3, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, 4, 2, 2, dtype=torch.float64)
    (center_features(f) * w).sum().backward()
    assert torch.allclose(f.grad, w)


def test_centred_correlation_separates_what_uncentred_cannot():
    # every cell is mostly a shared component (1, 1) plus a small specific part: uncentred, all T are near 1;
    # centred, alike cells correlate +1 and unlike ones −1
    a, b = [1.0, 1.0, 0.2, 0.0], [1.0, 1.0, 0.0, 0.2]
    fn = as_map([a, b, a, b])
    fm = as_map([b, a, b, a])
    raw = correlation_tensor(normalize_features(fn, eps=0.0), normalize_features(fm, eps=0.0))
    assert raw.min() > 0.97
    both = center_features(torch.cat([fn, fm]))
    fn_c, fm_c = normalize_features(both[:1], eps=0.0), normalize_features(both[1:], eps=0.0)
    T = correlation_tensor(fn_c, fm_c).reshape(4, 4)
    same = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)  # fn(p) == fm(q)
    assert torch.allclose(T[same], torch.ones(8, dtype=torch.float64))
    assert torch.allclose(T[~same], -torch.ones(8, dtype=torch.float64))


def test_center_features_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        center_features(torch.zeros(3, 4))


def test_correlation_features_centre_then_normalise():
    f = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    assert torch.equal(correlation_features(f), normalize_features(f))
    assert torch.equal(correlation_features(f, "batch", eps=0.1), normalize_features(center_features(f), eps=0.1))
    with pytest.raises(ValueError, match="feature_centering must be one of"):
        correlation_features(f, "image")


# ----------------------------------------------------------------- correlation_tensor


# Locations p0=(0,0), p1=(0,1), p2=(1,0), p3=(1,1) of a 2×2 grid, two channels.
FN = [[1, 0], [0, 1], [0.6, 0.8], [0, 0]]
FM = [[0, 1], [1, 0], [0.8, 0.6], [0.5, 0.5]]
# T[p, q] = ⟨fn(p), fm(q)⟩, worked out by hand
T_BY_HAND = [
    [0.0, 1.0, 0.8, 0.5],
    [1.0, 0.0, 0.6, 0.5],
    [0.8, 0.6, 0.6 * 0.8 + 0.8 * 0.6, 0.6 * 0.5 + 0.8 * 0.5],  # 0.96, 0.7
    [0.0, 0.0, 0.0, 0.0],
]
SN = [[0.5, 0.9], [0.5, 1.0]]
SM = [[1.0, 0.5], [0.5, 0.5]]


def test_correlation_tensor_by_hand():
    T = correlation_tensor(as_map(FN), as_map(FM))
    assert T.shape == (1, 2, 2, 2, 2)
    assert torch.allclose(T.reshape(4, 4), torch.tensor(T_BY_HAND, dtype=torch.float64))
    # spot-check the index order: T[b, i, j, k, l] pairs p = (i, j) with q = (k, l)
    assert T[0, 0, 1, 0, 0] == 1.0  # p1 · q0
    assert T[0, 1, 0, 1, 1].item() == pytest.approx(0.7)  # p2 · q3


def test_correlation_tensor_matches_einsum_on_non_square_grids():
    torch.manual_seed(0)
    fn = torch.rand(2, 5, 2, 3, dtype=torch.float64)
    fm = torch.rand(2, 5, 3, 1, dtype=torch.float64)
    T = correlation_tensor(fn, fm)
    assert T.shape == (2, 2, 3, 3, 1)
    assert torch.allclose(T, torch.einsum("bcij,bckl->bijkl", fn, fm))


def test_correlation_tensor_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="channel"):
        correlation_tensor(torch.rand(1, 3, 2, 2), torch.rand(1, 4, 2, 2))


# ------------------------------------------------------- saliency_guided + co_peaks


def test_saliency_guided_has_a_single_known_co_peak():
    T = correlation_tensor(as_map(FN), as_map(FM))
    Ts = saliency_guided(T, torch.tensor([SN], dtype=torch.float64), torch.tensor([SM], dtype=torch.float64))
    sn = [0.5, 0.9, 0.5, 1.0]
    sm = [1.0, 0.5, 0.5, 0.5]
    by_hand = [[sn[p] * sm[q] * T_BY_HAND[p][q] for q in range(4)] for p in range(4)]
    assert torch.allclose(Ts.reshape(4, 4), torch.tensor(by_hand, dtype=torch.float64))
    assert Ts[0, 0, 1, 0, 0].item() == pytest.approx(0.9 * 1.0 * 1.0)  # the largest value: p1, q0

    peaks = co_peaks(Ts)
    expected = torch.zeros(1, 2, 2, 2, 2, dtype=torch.bool)
    expected[0, 0, 1, 0, 0] = True
    assert torch.equal(peaks, expected)


def test_plateau_in_4d_gives_every_equal_maximum():
    # T itself has the value 1 twice, at (p0, q1) and (p1, q0), within one window: both count.
    T = correlation_tensor(as_map(FN), as_map(FM))
    peaks = co_peaks(T)
    expected = torch.zeros(1, 2, 2, 2, 2, dtype=torch.bool)
    expected[0, 0, 0, 0, 1] = True
    expected[0, 0, 1, 0, 0] = True
    assert torch.equal(peaks, expected)


def test_constant_tensor_is_all_peaks():
    Ts = torch.full((2, 3, 3, 3, 3), 0.25)
    assert co_peaks(Ts).all()
    assert co_peaks(Ts, threshold="none").all()


@pytest.mark.parametrize("axis", [1, 2, 3, 4])
def test_plateau_border_and_median_along_each_axis(axis):
    Ts = line([2.0, 1.0, 1.0, 0.0, 0.0], axis)
    # window 3 max: [2, 2, 1, 1, 0]. Index 2 ties with index 1 but has no larger neighbour:
    # a peak. Index 4 sits on the border next to an equal value: a peak (no wrap-around to
    # the 2 at index 0). The median of the five values is 1, which removes index 4.
    assert co_peaks(Ts, threshold="none").flatten().tolist() == [True, False, True, False, True]
    assert co_peaks(Ts).flatten().tolist() == [True, False, True, False, False]


def test_border_window_is_clipped_not_zero_padded():
    # With zero padding every negative value would lose to the padding; clipped, index 0 wins.
    Ts = line([-1.0, -2.0, -3.0])
    assert co_peaks(Ts, threshold="none").flatten().tolist() == [True, False, False]


def test_median_of_even_count_is_mean_of_middle_values():
    Ts = line([5.0, 0.0, 2.0, 0.0, 4.0, 3.0])
    # local maxima: 5, 2, 4. Sorted values 0 0 2 3 4 5 → median (2 + 3) / 2 = 2.5, so 2 is dropped.
    assert co_peaks(Ts, threshold="none").flatten().tolist() == [True, False, True, False, True, False]
    assert co_peaks(Ts).flatten().tolist() == [True, False, False, False, True, False]
    assert co_peaks(Ts, threshold=2.0).flatten().tolist() == [True, False, True, False, True, False]


def test_median_without_quantile_gives_the_same_peaks(monkeypatch):
    # Very large tensors take the sort path of the median; force it on a small one.
    import cosegkit.correlation as correlation

    monkeypatch.setattr(correlation, "_QUANTILE_MAX_SIZE", 0)
    Ts = torch.cat([line([5.0, 0.0, 2.0, 0.0, 4.0, 3.0]), line([1.0, 0.0, 9.0, 8.0, 0.0, 3.0])])
    # pair 1: sorted 0 0 1 3 8 9 → median 2; local maxima 1, 9, 3 → 1 is dropped
    assert co_peaks(Ts).reshape(2, 6).tolist() == [
        [True, False, False, False, True, False],
        [False, False, True, False, False, True],
    ]


def test_median_is_taken_per_pair():
    low = [2.0, 1.0, 1.0, 0.0, 0.0]
    high = [v + 10 for v in low]
    Ts = torch.cat([line(low), line(high)])
    # Per pair the medians are 1 and 11; a median over both pairs (6) would leave pair 0 empty.
    assert co_peaks(Ts).reshape(2, 5).tolist() == [[True, False, True, False, False]] * 2


def test_co_peak_window_size_and_border_in_4d():
    torch.manual_seed(1)
    Ts = 0.5 * torch.rand(1, 5, 5, 5, 5)
    Ts[0, 0, 0, 0, 0] = 1.0  # corner: its window is clipped on every axis
    Ts[0, 2, 2, 2, 2] = 0.9  # two steps from the corner along every axis
    peaks3 = co_peaks(Ts, window=3)
    peaks5 = co_peaks(Ts, window=5)
    assert peaks3[0, 0, 0, 0, 0] and peaks3[0, 2, 2, 2, 2]
    assert peaks5[0, 0, 0, 0, 0] and not peaks5[0, 2, 2, 2, 2]  # window 5 reaches the corner


def test_co_peaks_match_the_definition_on_random_input():
    torch.manual_seed(2)
    Ts = torch.rand(3, 4, 3, 4, 5, dtype=torch.float64)
    peaks = co_peaks(Ts)
    medians = np.median(Ts.flatten(1).numpy(), axis=1)
    expected = (Ts == brute_max_filter(Ts, 3)) & (Ts >= torch.from_numpy(medians).view(-1, 1, 1, 1, 1))
    assert torch.equal(peaks, expected)
    assert 0 < peaks.sum() < Ts.numel()


def test_co_peaks_carry_no_gradient():
    Ts = torch.rand(1, 3, 3, 3, 3, requires_grad=True)
    peaks = co_peaks(Ts)
    assert peaks.dtype == torch.bool and not peaks.requires_grad


def test_unknown_threshold_is_rejected():
    with pytest.raises(ValueError, match="median"):
        co_peaks(torch.rand(1, 2, 2, 2, 2), threshold="mean")


# ----------------------------------------------------------------- max_filter_4d


@pytest.mark.parametrize("window", [1, 3, 5])
def test_separable_max_filter_equals_brute_force(window):
    torch.manual_seed(window)
    x = torch.randn(2, 4, 5, 3, 6)
    assert torch.equal(max_filter_4d(x, window), brute_max_filter(x, window))
    ties = torch.randint(0, 3, (2, 4, 5, 3, 6)).float()  # many equal values
    assert torch.equal(max_filter_4d(ties, window), brute_max_filter(ties, window))


def test_max_filter_rejects_even_window():
    with pytest.raises(ValueError, match="odd"):
        max_filter_4d(torch.rand(1, 2, 2, 2, 2), window=4)
