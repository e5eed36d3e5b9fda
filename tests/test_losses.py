import math

import pytest
import torch

from cosegkit.correlation import co_peaks, correlation_tensor, normalize_features, saliency_guided
from cosegkit.losses import (
    affinity_loss,
    affinity_term,
    copeak_loss,
    pair_losses,
    saliency_loss,
    saliency_weights,
)

f64 = dict(dtype=torch.float64)


# ----------------------------------------------------------------------- co-peak loss


def test_copeak_loss_by_hand_both_forms():
    # Two pairs, each a 1×1 grid against a 1×4 grid; different peak counts per pair.
    Ts = torch.tensor([[0.2, 0.4, 0.6, 0.1], [0.3, 0.5, 0.1, 0.7]], **f64).view(2, 1, 1, 1, 4)
    peaks = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=torch.bool).view(2, 1, 1, 1, 4)
    # pair 0: mean of 0.2 and 0.6 = 0.4; pair 1: mean of 0.5 alone = 0.5
    code = copeak_loss(Ts, peaks, form="code")
    paper = copeak_loss(Ts, peaks, form="paper")
    # −log σ(a) = log(1 + e^(−a))
    assert code.tolist() == pytest.approx([math.log(1 + math.exp(-0.4)), math.log(1 + math.exp(-0.5))])
    assert paper.tolist() == pytest.approx([-math.log(0.4), -math.log(0.5)])
    assert (paper > code).all()  # the paper form is the steeper one on [0, 1)


def test_copeak_loss_without_peaks_is_defined():
    Ts = torch.rand(1, 2, 2, 2, 2, **f64, requires_grad=True)
    none = torch.zeros(1, 2, 2, 2, 2, dtype=torch.bool)
    code = copeak_loss(Ts, none, form="code")
    paper = copeak_loss(Ts, none, form="paper", eps=1e-6)
    assert code.item() == pytest.approx(math.log(2))  # −log σ(0)
    assert paper.item() == pytest.approx(-math.log(1e-6))
    (code + paper).sum().backward()
    assert torch.equal(Ts.grad, torch.zeros_like(Ts))


def test_copeak_loss_with_a_negative_mean_from_centred_features():
    """Centred features make Tˢ negative: the code form exceeds log 2 and still has a gradient; the paper form
    clamps the mean to eps (its largest loss) and has none — as copeak_loss's docstring says."""
    Ts = torch.tensor([-0.5, 0.1], **f64).view(1, 1, 1, 1, 2).requires_grad_(True)
    peaks = torch.ones(1, 1, 1, 1, 2, dtype=torch.bool)  # mean −0.2
    code = copeak_loss(Ts, peaks, form="code")
    assert code.item() == pytest.approx(math.log(1 + math.exp(0.2))) and code.item() > math.log(2)
    code.sum().backward()
    assert (Ts.grad < 0).all()  # raising Tˢ lowers the loss
    Ts.grad = None
    paper = copeak_loss(Ts, peaks, form="paper", eps=1e-6)
    assert paper.item() == pytest.approx(-math.log(1e-6))
    paper.sum().backward()
    assert torch.equal(Ts.grad, torch.zeros_like(Ts))


def test_copeak_loss_rejects_unknown_form():
    with pytest.raises(ValueError, match="code"):
        copeak_loss(torch.rand(1, 1, 1, 1, 1), torch.ones(1, 1, 1, 1, 1, dtype=torch.bool), form="log")


# ---------------------------------------------------------------------- affinity loss

# 1×2 grids for n and m, α = 4
SN = torch.tensor([[[0.8, 0.2]]], **f64)
SM = torch.tensor([[[0.6, 0.4]]], **f64)
T_NM = torch.tensor([[0.5, 0.1], [0.2, 0.9]], **f64).view(1, 1, 2, 1, 2)
# S̃n(p) S̃m(q) (1 − T) + 4 (S̃n(p) − S̃m(q))² T, for every (p, q):
BY_HAND = [
    0.8 * 0.6 * 0.5 + 4 * 0.2**2 * 0.5,  # p0 q0: 0.24  + 0.08  = 0.32
    0.8 * 0.4 * 0.9 + 4 * 0.4**2 * 0.1,  # p0 q1: 0.288 + 0.064 = 0.352
    0.2 * 0.6 * 0.8 + 4 * 0.4**2 * 0.2,  # p1 q0: 0.096 + 0.128 = 0.224
    0.2 * 0.4 * 0.1 + 4 * 0.2**2 * 0.9,  # p1 q1: 0.008 + 0.144 = 0.152
]


def test_affinity_term_by_hand():
    assert sum(BY_HAND) == pytest.approx(1.048)
    assert affinity_term(SN, SM, T_NM, alpha=4.0, reduction="sum").item() == pytest.approx(1.048)
    assert affinity_term(SN, SM, T_NM, alpha=4.0, reduction="mean").item() == pytest.approx(1.048 / 4)


def test_affinity_term_uses_saliency_of_the_second_image():
    # With the printed typo S̃n(q) the term would not depend on S̃m at all.
    other_sm = torch.tensor([[[0.1, 0.9]]], **f64)
    assert affinity_term(SN, SM, T_NM) != pytest.approx(affinity_term(SN, other_sm, T_NM).item())
    typo = sum(
        SN[0, 0, p] * SN[0, 0, q] * (1 - T_NM.view(2, 2)[p, q])
        + 4 * (SN[0, 0, p] - SN[0, 0, q]) ** 2 * T_NM.view(2, 2)[p, q]
        for p in range(2)
        for q in range(2)
    )
    assert affinity_term(SN, SM, T_NM, reduction="sum").item() != pytest.approx(typo.item())


def test_affinity_term_is_symmetric_under_swapping_images():
    swapped_T = T_NM.permute(0, 3, 4, 1, 2)  # T_mn(q, p) = T_nm(p, q)
    assert torch.allclose(affinity_term(SN, SM, T_NM), affinity_term(SM, SN, swapped_T))


def test_affinity_sum_is_mean_times_location_pairs():
    torch.manual_seed(0)
    fn = normalize_features(torch.rand(2, 4, 2, 3, **f64))
    fm = normalize_features(torch.rand(2, 4, 2, 3, **f64))
    sn, sm = torch.rand(2, 2, 3, **f64), torch.rand(2, 2, 3, **f64)
    total = affinity_loss(fn, fm, sn, sm, reduction="sum")
    mean = affinity_loss(fn, fm, sn, sm, reduction="mean")
    assert torch.allclose(total, mean * 6**2)


def test_affinity_loss_by_hand_on_one_location():
    fn = normalize_features(torch.tensor([3.0, 4.0], **f64).view(1, 2, 1, 1))
    fm = normalize_features(torch.tensor([4.0, 3.0], **f64).view(1, 2, 1, 1))
    sn = torch.full((1, 1, 1), 0.9, **f64)
    sm = torch.full((1, 1, 1), 0.5, **f64)
    t_nm = 24 / 25.01  # (3·4 + 4·3) / (‖f‖² + 0.01)
    t_self = 25 / 25.01
    expected = (
        0.9 * 0.5 * (1 - t_nm)
        + 4 * (0.9 - 0.5) ** 2 * t_nm  # ℓ̃a(n, m)
        + 0.9 * 0.9 * (1 - t_self)  # ℓ̃a(n, n); (S̃n(p) − S̃n(p))² = 0
        + 0.5 * 0.5 * (1 - t_self)  # ℓ̃a(m, m)
    )
    assert affinity_loss(fn, fm, sn, sm, alpha=4.0).item() == pytest.approx(expected)


def test_affinity_loss_is_symmetric_in_the_pair():
    torch.manual_seed(1)
    fn = normalize_features(torch.rand(3, 5, 3, 3, **f64))
    fm = normalize_features(torch.rand(3, 5, 3, 3, **f64))
    sn, sm = torch.rand(3, 3, 3, **f64), torch.rand(3, 3, 3, **f64)
    assert torch.allclose(affinity_loss(fn, fm, sn, sm), affinity_loss(fm, fn, sm, sn))


# ---------------------------------------------------------------------- saliency loss

PRIOR = torch.tensor([[[0.9, 0.1], [0.2, 0.0]]], **f64)  # mean 0.3 → only 0.9 is salient, ε = 1/4


def test_saliency_weights_by_hand():
    assert saliency_weights(PRIOR).tolist() == [[[0.75, 0.25], [0.25, 0.25]]]
    # the split is strictly above the mean: 0.5 equals the mean of [1, .5, .5, 0]
    ties = torch.tensor([[[1.0, 0.5], [0.5, 0.0]]], **f64)
    assert saliency_weights(ties).tolist() == [[[0.75, 0.25], [0.25, 0.25]]]
    assert saliency_weights(torch.full((1, 2, 2), 0.4)).eq(0).all()  # flat prior: nothing salient


def test_saliency_weights_balance_salient_and_background():
    torch.manual_seed(2)
    prior = torch.rand(4, 16, 12, **f64) ** 3
    rho = saliency_weights(prior)
    salient = prior > prior.mean(dim=(1, 2), keepdim=True)
    on_salient = (rho * salient).sum(dim=(1, 2))
    on_background = (rho * ~salient).sum(dim=(1, 2))
    assert torch.allclose(on_salient, on_background)
    assert (on_salient > 0).all()


def test_saliency_loss_by_hand():
    S = torch.full((1, 2, 2), 0.5, **f64, requires_grad=True)
    # (S − Ŝ)² = [0.16, 0.16, 0.09, 0.25]; weighted by ρ = [0.75, 0.25, 0.25, 0.25]:
    # 0.12 + 0.04 + 0.0225 + 0.0625 = 0.245, mean over 4 pixels = 0.06125
    loss = saliency_loss(S, PRIOR)
    assert loss.item() == pytest.approx(0.06125)
    loss.sum().backward()
    # d/dS = 2 ρ (S − Ŝ) / 4
    assert torch.allclose(S.grad, 2 * saliency_weights(PRIOR) * (0.5 - PRIOR) / 4)


def test_saliency_loss_rejects_channel_axis():
    with pytest.raises(ValueError, match=r"x\[:, 0\]"):
        saliency_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))


# ---------------------------------------------------------------------- pair_losses


def test_pair_losses_combine_the_pieces():
    torch.manual_seed(3)
    fn = normalize_features(torch.rand(2, 6, 3, 3, **f64))
    fm = normalize_features(torch.rand(2, 6, 3, 3, **f64))
    sn, sm = torch.rand(2, 3, 3, **f64), torch.rand(2, 3, 3, **f64)
    out = pair_losses(fn, fm, sn, sm, alpha=2.0, copeak_form="paper", affinity_reduction="sum")
    Ts = saliency_guided(correlation_tensor(fn, fm), sn, sm)
    peaks = co_peaks(Ts)
    assert torch.allclose(out["copeak"], copeak_loss(Ts, peaks, form="paper"))
    assert torch.allclose(out["affinity"], affinity_loss(fn, fm, sn, sm, alpha=2.0, reduction="sum"))
    assert out["num_peaks"].tolist() == peaks.flatten(1).sum(1).tolist()


# ---------------------------------------------------------------------- gradients


def test_gradcheck_copeak_chain():
    torch.manual_seed(4)
    fn = torch.rand(2, 3, 2, 3, **f64, requires_grad=True)
    fm = torch.rand(2, 3, 2, 3, **f64, requires_grad=True)
    sn = (0.1 + 0.8 * torch.rand(2, 2, 3, **f64)).requires_grad_()
    sm = (0.1 + 0.8 * torch.rand(2, 2, 3, **f64)).requires_grad_()

    def Ts_of(fn, fm, sn, sm):
        return saliency_guided(correlation_tensor(normalize_features(fn), normalize_features(fm)), sn, sm)

    peaks = co_peaks(Ts_of(fn, fm, sn, sm))  # fixed set, chosen once
    for form in ("code", "paper"):
        assert torch.autograd.gradcheck(
            lambda *x, form=form: copeak_loss(Ts_of(*x), peaks, form=form), (fn, fm, sn, sm)
        )


def test_gradcheck_affinity_and_saliency_losses():
    torch.manual_seed(5)
    fn = torch.rand(2, 3, 2, 2, **f64, requires_grad=True)
    fm = torch.rand(2, 3, 2, 2, **f64, requires_grad=True)
    sn = torch.rand(2, 2, 2, **f64, requires_grad=True)
    sm = torch.rand(2, 2, 2, **f64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda fn, fm, sn, sm: affinity_loss(normalize_features(fn), normalize_features(fm), sn, sm),
        (fn, fm, sn, sm),
    )
    S = torch.rand(2, 5, 4, **f64, requires_grad=True)
    prior = torch.rand(2, 5, 4, **f64)
    assert torch.autograd.gradcheck(lambda S: saliency_loss(S, prior), (S,))


# ---------------------------------------------------------------------- training_losses


def test_loss_options_are_the_keywords_of_training_losses_and_change_training():
    import inspect

    from cosegkit.config import TRAINING_FIELDS, preset
    from cosegkit.losses import loss_options, training_losses

    options = loss_options(preset("tiny"))
    keywords = [p.name for p in inspect.signature(training_losses).parameters.values() if p.kind == p.KEYWORD_ONLY]
    fixed = {"feature_eps", "affinity_reduction", "copeak_window", "copeak_threshold", "lambda_saliency"}
    assert sorted(options) == sorted(set(keywords) - fixed)  # the rest keep the spec's values in training
    assert set(options) <= set(TRAINING_FIELDS)  # a checkpoint never resumes under other losses
