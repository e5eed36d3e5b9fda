"""The 4-D correlation tensor between two feature maps, and its co-peaks (spec §2–§3).

For a pair of images n, m with feature maps over an h × w grid::

    f(p) − μ    (optional) minus the mean descriptor μ      center_features
    f̂(p)        = f(p) / sqrt(‖f(p)‖² + eps)              normalize_features
                  (both steps, as training takes them)      correlation_features
    T_nm(p, q)  = ⟨f̂n(p), f̂m(q)⟩                          correlation_tensor
    Tˢ_nm(p, q) = S̃n(p) · S̃m(q) · T_nm(p, q)               saliency_guided
    co-peak     = local maximum of Tˢ in a 3×3×3×3 window    co_peaks
                  whose value is ≥ the median of Tˢ

Every function works on a batch of B pairs at once: the pair axis comes first,
then the four spatial axes ``(B, h, w, h', w')`` — the first two index p in
image n, the last two index q in image m.
"""

from __future__ import annotations

import torch


def center_features(features: torch.Tensor) -> torch.Tensor:
    """Subtract the mean descriptor μ of all locations of all maps in the batch (μ carries no gradient).

    features: ``(B, C, h, w)``.  Returns the same shape, with mean zero over ``(B, h, w)``.
    Post-ReLU features share a large common component, so ⟨f̂n(p), f̂m(q)⟩ is high between
    almost any two cells, most of all between the background cells every image has. Centred,
    T = ⟨f̂n, f̂m⟩ lies in [−1, 1] and measures what two cells share beyond the average cell
    (the idea of DDT, :mod:`cosegkit.ddt`): similar cells score near 1, dissimilar ones below 0.

    >>> f = torch.tensor([[[[1.0, 3.0]]]])   # one channel, two cells: mean 2
    >>> center_features(f).flatten().tolist()
    [-1.0, 1.0]
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, h, w); got {tuple(features.shape)}.")
    return features - features.detach().mean(dim=(0, 2, 3), keepdim=True)


def normalize_features(features: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """Divide every feature vector by ``sqrt(‖f(p)‖² + eps)``.

    features: ``(B, C, h, w)``.  Returns the same shape.
    With non-negative (post-ReLU) features the result has norm < 1, so the
    correlations built from it lie in [0, 1). ``eps`` keeps a zero vector at zero.
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, h, w); got {tuple(features.shape)}.")
    return features / torch.sqrt(features.pow(2).sum(dim=1, keepdim=True) + eps)


FEATURE_CENTERINGS = ("none", "batch")


def correlation_features(features: torch.Tensor, centering: str = "none", eps: float = 0.01) -> torch.Tensor:
    """The features f̂ that T is built from: optionally centred, then normalised. ``(B, C, h, w)`` → same shape.

    centering: ``"none"`` (the paper) leaves F as it is; ``"batch"`` first subtracts the mean descriptor of
    all B maps (:func:`center_features`). Centre the whole batch — both images of every pair — in one call,
    before splitting it into pairs. eps: see :func:`normalize_features`.
    """
    if centering == "none":
        return normalize_features(features, eps=eps)
    if centering == "batch":
        return normalize_features(center_features(features), eps=eps)
    raise ValueError(f"feature_centering must be one of {FEATURE_CENTERINGS}, got {centering!r}")


def correlation_tensor(features_n: torch.Tensor, features_m: torch.Tensor) -> torch.Tensor:
    """All inner products between the locations of two feature maps, as one matrix product.

    features_n: ``(B, C, h, w)``, features_m: ``(B, C, h', w')``, already normalised
    (see :func:`normalize_features`).
    Returns T: ``(B, h, w, h', w')`` with ``T[b, i, j, k, l] = ⟨f̂n[b, :, i, j], f̂m[b, :, k, l]⟩``.
    """
    if features_n.dim() != 4 or features_m.dim() != 4:
        raise ValueError(
            f"features must have shape (B, C, h, w); got {tuple(features_n.shape)} and {tuple(features_m.shape)}."
        )
    if features_n.shape[:2] != features_m.shape[:2]:
        raise ValueError(
            "both feature maps need the same batch size B and channel count C; "
            f"got {tuple(features_n.shape)} and {tuple(features_m.shape)}."
        )
    b, _, h, w = features_n.shape
    _, _, h2, w2 = features_m.shape
    rows = features_n.flatten(2).transpose(1, 2)  # (B, h·w, C)
    cols = features_m.flatten(2)  # (B, C, h'·w')
    return torch.bmm(rows, cols).view(b, h, w, h2, w2)


def saliency_guided(T: torch.Tensor, saliency_n: torch.Tensor, saliency_m: torch.Tensor) -> torch.Tensor:
    """Weight the correlation tensor by the co-saliency of both locations: ``S̃n(p) · S̃m(q) · T(p, q)``.

    T: ``(B, h, w, h', w')``; saliency_n: ``(B, h, w)`` and saliency_m: ``(B, h', w')``,
    the low-resolution co-saliency maps S̃ = sigmoid(Z). Returns Tˢ, shape of T.
    """
    if T.dim() != 5:
        raise ValueError(f"T must have shape (B, h, w, h', w'); got {tuple(T.shape)}.")
    if saliency_n.shape != T.shape[:3] or saliency_m.shape != T.shape[:1] + T.shape[3:]:
        raise ValueError(
            f"saliency maps must have shapes (B, h, w) = {tuple(T.shape[:3])} and "
            f"(B, h', w') = {tuple(T.shape[:1] + T.shape[3:])} to match T; "
            f"got {tuple(saliency_n.shape)} and {tuple(saliency_m.shape)}."
        )
    return saliency_n[:, :, :, None, None] * saliency_m[:, None, None, :, :] * T


def _max_filter_1d(x: torch.Tensor, dim: int, window: int) -> torch.Tensor:
    """Sliding maximum of width ``window`` along ``dim``; positions outside the tensor count as -inf."""
    radius = window // 2
    pad_shape = list(x.shape)
    pad_shape[dim] = radius
    pad = x.new_full(pad_shape, float("-inf"))
    padded = torch.cat([pad, x, pad], dim=dim)
    return padded.unfold(dim, window, 1).amax(dim=-1)  # unfold appends the window as the last axis


def max_filter_4d(x: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Maximum over the ``window⁴`` neighbourhood of every entry of a batch of 4-D tensors.

    x: ``(B, h, w, h', w')``, floating point. Returns the same shape.
    The 4-D maximum is separable: a 1-D max filter of width ``window`` is run along
    each of the four spatial axes in turn. The window is clipped at the borders
    (outside the tensor counts as -inf), so a border entry only sees its real neighbours.
    """
    if x.dim() != 5:
        raise ValueError(f"x must have shape (B, h, w, h', w'); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor; got {x.dtype}.")
    if not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer (e.g. 3); got {window!r}.")
    for dim in (1, 2, 3, 4):
        x = _max_filter_1d(x, dim, window)
    return x


_QUANTILE_MAX_SIZE = 2**24  # torch.quantile refuses larger inputs; sort them instead


def _median(values: torch.Tensor) -> torch.Tensor:
    """Median of each row, the mean of the two middle values when the count is even. ``(B, n)`` → ``(B,)``."""
    if values.numel() <= _QUANTILE_MAX_SIZE:
        # linear interpolation gives the same value, faster; quantile needs float32/float64
        return torch.quantile(values.float(), 0.5, dim=1).to(values.dtype)
    n = values.shape[1]
    ordered = values.sort(dim=1).values
    return (ordered[:, (n - 1) // 2] + ordered[:, n // 2]) / 2


@torch.no_grad()
def co_peaks(Ts: torch.Tensor, window: int = 3, threshold: str | float | None = "median") -> torch.Tensor:
    """Boolean mask of the co-peaks of a batch of saliency-guided tensors.

    Ts: ``(B, h, w, h', w')``. Returns a bool tensor of the same shape.

    An entry is a co-peak when it equals the maximum of its ``window⁴`` neighbourhood
    (clipped at the borders, see :func:`max_filter_4d`) and passes the threshold:

    - ``"median"`` (default, the authors' code): value ≥ the median of all values of
      *that pair* (mean of the two middle values when their count is even);
    - ``"none"`` or ``None`` (the paper): no threshold;
    - a number: value ≥ that number.

    Plateaus: the test is ``Ts == max_filter_4d(Ts)``, so when equal values neighbour
    each other and nothing larger is in reach, *all* of them are co-peaks. A constant
    tensor (for example at the start of training, if every feature is the same) makes
    every entry a co-peak. The global maximum is always a co-peak, so the mask is never
    empty with ``"median"`` or ``"none"``.

    The set is chosen without gradient; losses use the values of Tˢ at the mask.
    """
    is_max = Ts == max_filter_4d(Ts, window)
    if threshold is None or threshold == "none":
        return is_max
    if threshold == "median":
        level = _median(Ts.flatten(1)).view(-1, 1, 1, 1, 1)
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        level = threshold
    else:
        raise ValueError(f"threshold must be 'median', 'none' or a number; got {threshold!r}.")
    return is_max & (Ts >= level)
