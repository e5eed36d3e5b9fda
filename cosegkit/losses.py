"""The three losses of DeepCO3 (spec §4), as plain functions of tensors.

Per pair of images (n, m), batched over B pairs:

    co-peak   ℓt = −log σ(mean_{(p,q)∈M} Tˢ(p,q))       (code)   copeak_loss
                 or −log(mean_{(p,q)∈M} Tˢ(p,q))         (paper)
    affinity  ℓa = ℓ̃a(n,m) + ℓ̃a(n,n) + ℓ̃a(m,m)                     affinity_loss

Per image, against an unsupervised saliency prior Ŝ:

    saliency  ℓs = mean_p ρ(p) (S(p) − Ŝ(p))²                        saliency_loss

Per batch of images, the pairs (k, k + B/2) — what training minimises:

    Σ_pairs [λt ℓt + λa ℓa] + λs Σ_images ℓs                                training_losses

Shapes: features ``(B, C, h, w)``, low-resolution co-saliency S̃ ``(B, h, w)``,
correlation tensors ``(B, h, w, h, w)``, full-resolution maps ``(B, H, W)``.
Every loss returns one value per pair (or image), shape ``(B,)``;
:func:`training_losses` weights and sums them, exactly as :func:`cosegkit.train.fit` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .correlation import co_peaks, correlation_features, correlation_tensor, saliency_guided


def copeak_loss(Ts: torch.Tensor, peaks: torch.Tensor, form: str = "code", eps: float = 1e-6) -> torch.Tensor:
    """Reward high saliency-guided correlation at the co-peaks. ``(B, h, w, h', w')`` → ``(B,)``.

    Ts: the saliency-guided tensor Tˢ; peaks: a bool mask of the same shape (from
    :func:`cosegkit.correlation.co_peaks`). With ``a`` = mean of Tˢ over the peaks of a pair:

    - ``form="code"`` (default): ``−log σ(a)``;
    - ``form="paper"``: ``−log(max(a, eps))`` (the clamp keeps log 0 away).

    A pair with no peaks has ``a = 0``: its loss is the form's value at 0 — ``log 2`` for "code",
    ``−log eps`` for "paper" — and its gradient is zero.

    Tˢ ∈ [0, 1) only for the paper's non-negative (post-ReLU) features. Centred features
    (``Config.feature_centering="batch"``) give T, and so Tˢ, in [−1, 1], and ``a`` can be negative:
    the "code" form then exceeds ``log 2`` and still pulls ``a`` up; the "paper" form clamps every
    ``a ≤ eps`` to ``eps``, so such a pair gets its largest loss and no gradient.
    """
    if peaks.shape != Ts.shape:
        raise ValueError(f"peaks must have the shape of Ts {tuple(Ts.shape)}; got {tuple(peaks.shape)}.")
    weights = peaks.to(Ts.dtype).flatten(1)
    count = weights.sum(dim=1)
    mean = (Ts.flatten(1) * weights).sum(dim=1) / count.clamp_min(1)
    if form == "code":
        return -F.logsigmoid(mean)
    if form == "paper":
        return -torch.log(mean.clamp_min(eps))
    raise ValueError(f"form must be 'code' or 'paper'; got {form!r}.")


def affinity_term(
    saliency_n: torch.Tensor,
    saliency_m: torch.Tensor,
    T: torch.Tensor,
    alpha: float = 4.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """One affinity term ℓ̃a(n, m) per pair. Returns ``(B,)``.

    saliency_n: ``(B, h, w)``, saliency_m: ``(B, h', w')``, T = T_nm: ``(B, h, w, h', w')``::

        ℓ̃a(n, m) = Σ_p Σ_q  S̃n(p) S̃m(q) (1 − T(p,q))  +  α (S̃n(p) − S̃m(q))² T(p,q)

    The first part pulls salient features of both images together; the second pushes
    salient features away from background ones. (The printed paper writes S̃n(q); S̃m(q)
    is the inter-image form.) ``reduction="mean"`` (code) averages over the
    ``h·w·h'·w'`` location pairs, ``"sum"`` (paper) sums them.
    """
    if T.dim() != 5 or saliency_n.shape != T.shape[:3] or saliency_m.shape != T.shape[:1] + T.shape[3:]:
        raise ValueError(
            "expected T (B, h, w, h', w') with saliency maps (B, h, w) and (B, h', w'); got "
            f"T {tuple(T.shape)}, saliency_n {tuple(saliency_n.shape)}, saliency_m {tuple(saliency_m.shape)}."
        )
    s_p = saliency_n.flatten(1)[:, :, None]  # (B, h·w, 1)
    s_q = saliency_m.flatten(1)[:, None, :]  # (B, 1, h'·w')
    t = T.reshape(T.shape[0], s_p.shape[1], s_q.shape[2])  # (B, h·w, h'·w')
    term = s_p * s_q * (1 - t) + alpha * (s_p - s_q).pow(2) * t
    if reduction == "mean":
        return term.mean(dim=(1, 2))
    if reduction == "sum":
        return term.sum(dim=(1, 2))
    raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}.")


def affinity_loss(
    features_n: torch.Tensor,
    features_m: torch.Tensor,
    saliency_n: torch.Tensor,
    saliency_m: torch.Tensor,
    alpha: float = 4.0,
    reduction: str = "mean",
    T_nm: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pair's affinity loss ℓ̃a(n, m) + ℓ̃a(n, n) + ℓ̃a(m, m). Returns ``(B,)``.

    features_n, features_m: normalised features ``(B, C, h, w)``; saliency_n,
    saliency_m: low-resolution co-saliency ``(B, h, w)``. Pass ``T_nm`` (the
    correlation tensor of the two, ``(B, h, w, h, w)``) when it is already computed.
    """
    if T_nm is None:
        T_nm = correlation_tensor(features_n, features_m)
    T_nn = correlation_tensor(features_n, features_n)
    T_mm = correlation_tensor(features_m, features_m)
    return (
        affinity_term(saliency_n, saliency_m, T_nm, alpha, reduction)
        + affinity_term(saliency_n, saliency_n, T_nn, alpha, reduction)
        + affinity_term(saliency_m, saliency_m, T_mm, alpha, reduction)
    )


@torch.no_grad()
def saliency_weights(prior: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights ρ that make salient and background pixels count equally. ``(B, H, W)`` → ``(B, H, W)``.

    Each prior map is split at its own mean: pixels above the mean are salient. With
    ε the salient fraction of the image, ρ = 1 − ε on salient pixels and ε elsewhere,
    so both regions carry the same total weight ε(1 − ε)·H·W.
    A constant prior has no pixel above its mean, so ε = 0 and every weight is 0.
    """
    if prior.dim() != 3:
        raise ValueError(f"prior must have shape (B, H, W); got {tuple(prior.shape)}.")
    salient = prior > prior.mean(dim=(1, 2), keepdim=True)
    fraction = salient.to(prior.dtype).mean(dim=(1, 2), keepdim=True)
    return torch.where(salient, 1 - fraction, fraction)


def saliency_loss(saliency: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Weighted squared error between co-saliency and prior, ``mean_p ρ(p) (S(p) − Ŝ(p))²``.

    saliency: S, ``(B, H, W)`` in [0, 1]; prior: Ŝ, same shape (a fixed target: no
    gradient flows into it). Returns ``(B,)``. See :func:`saliency_weights` for ρ.
    """
    if saliency.shape != prior.shape or saliency.dim() != 3:
        raise ValueError(
            "saliency and prior must both have shape (B, H, W) (drop a channel axis with x[:, 0]); "
            f"got {tuple(saliency.shape)} and {tuple(prior.shape)}."
        )
    prior = prior.detach()
    return (saliency_weights(prior) * (saliency - prior).pow(2)).mean(dim=(1, 2))


def pair_losses(
    features_n: torch.Tensor,
    features_m: torch.Tensor,
    saliency_n: torch.Tensor,
    saliency_m: torch.Tensor,
    *,
    alpha: float = 4.0,
    copeak_form: str = "code",
    affinity_reduction: str = "mean",
    window: int = 3,
    threshold: str | float | None = "median",
) -> dict[str, torch.Tensor]:
    """Co-peak and affinity losses of B pairs, sharing one correlation tensor.

    features_n, features_m: normalised features ``(B, C, h, w)``; saliency_n,
    saliency_m: low-resolution co-saliency S̃ ``(B, h, w)``.
    Returns ``{"copeak": (B,), "affinity": (B,), "num_peaks": (B,)}`` — the last is the
    number of co-peaks per pair (an int tensor, for logging).
    """
    T = correlation_tensor(features_n, features_m)
    Ts = saliency_guided(T, saliency_n, saliency_m)
    peaks = co_peaks(Ts, window=window, threshold=threshold)
    return {
        "copeak": copeak_loss(Ts, peaks, form=copeak_form),
        "affinity": affinity_loss(
            features_n, features_m, saliency_n, saliency_m, alpha=alpha, reduction=affinity_reduction, T_nm=T
        ),
        "num_peaks": peaks.flatten(1).sum(dim=1),
    }


def pair_indices(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs inside a batch: (0, B/2), (1, B/2+1), … — (1,4), (2,5), (3,6) for B = 6. Returns n, m ``(B//2,)``."""
    half = batch_size // 2
    return torch.arange(half), torch.arange(half, 2 * half)


def training_losses(
    features: torch.Tensor,
    saliency_low: torch.Tensor,
    saliency: torch.Tensor,
    priors: torch.Tensor,
    *,
    feature_centering: str = "none",
    feature_eps: float = 0.01,
    alpha: float = 4.0,
    copeak_form: str = "code",
    affinity_reduction: str = "mean",
    copeak_window: int = 3,
    copeak_threshold: str | float | None = "median",
    lambda_copeak: float = 0.5,
    lambda_affinity: float = 0.1,
    lambda_saliency: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The loss of one training batch, ``Σ_pairs [λt ℓt + λa ℓa] + λs Σ_images ℓs`` (λs = 1 in training), and its parts.

    features: the backbone's features F ``(B, C, h, w)`` (not yet normalised); saliency_low: S̃ ``(B, h, w)``;
    saliency: S ``(B, H, W)``; priors: Ŝ ``(B, H, W)``. Image k is paired with image k + B/2 (:func:`pair_indices`).
    The keywords are the :class:`cosegkit.config.Config` fields of the same names (:func:`loss_options`):
    the features are centred and normalised (:func:`cosegkit.correlation.correlation_features`), then
    :func:`pair_losses` and :func:`saliency_loss` give the parts.

    Returns scalars: ``total``, and ``copeak``, ``affinity`` (summed over pairs), ``saliency`` (summed
    over images), ``copeaks_per_pair`` (the mean number of co-peaks, for logging).
    """
    n, m = pair_indices(features.shape[0])
    f_hat = correlation_features(features, feature_centering, eps=feature_eps)
    pairs = pair_losses(
        f_hat[n],
        f_hat[m],
        saliency_low[n],
        saliency_low[m],
        alpha=alpha,
        copeak_form=copeak_form,
        affinity_reduction=affinity_reduction,
        window=copeak_window,
        threshold=copeak_threshold,
    )
    copeak = pairs["copeak"].sum()
    affinity = pairs["affinity"].sum()
    saliency = saliency_loss(saliency, priors).sum()
    return {
        "total": lambda_copeak * copeak + lambda_affinity * affinity + lambda_saliency * saliency,
        "copeak": copeak,
        "affinity": affinity,
        "saliency": saliency,
        "copeaks_per_pair": pairs["num_peaks"].sum() / len(n),
    }


LOSS_FIELDS = ("feature_centering", "alpha", "copeak_form", "lambda_copeak", "lambda_affinity")


def loss_options(config) -> dict:
    """The keyword arguments of :func:`training_losses` read from a :class:`cosegkit.config.Config`."""
    return {name: getattr(config, name) for name in LOSS_FIELDS}
