"""DDT: the direction a collection's features share, as an unsupervised co-localisation map.

Deep Descriptor Transforming (Wei et al., 2017) is the unsupervised co-localisation baseline
of the DeepCO3 paper. It needs no training at all:

1. run a pretrained backbone on every image of the collection → descriptors (C,) on a grid;
2. centre all descriptors of all images on their mean μ and find their first principal
   direction v (the top eigenvector of their covariance);
3. the projection ⟨f − μ, v⟩ of each cell is its *indicator*: one sign is the object the
   images share, the other the rest.

What DeepCO3 learns with its co-peak loss — features that many images agree on — DDT reads
off in one linear step, so it is the baseline that tells whether training found more than
the collection's dominant direction. An eigenvector's sign is arbitrary; here the positive
side is the one that agrees with the saliency prior when one is given, and otherwise the
smaller side (objects cover less of an image than their background).

Example (six descriptors: two object cells share the feature (2, 2), four are zero)::

    >>> import torch
    >>> f = torch.zeros(2, 2, 1, 3); f[0, :, 0, 0] = 2.0; f[1, :, 0, 2] = 2.0
    >>> maps = ddt_maps(f)
    >>> maps.round(3).tolist()   # 2 · (1 − 1/3) · √2 on the objects, −2/3 · √2 elsewhere
    [[[1.886, -0.943, -0.943]], [[-0.943, -0.943, 1.886]]]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .masks import prior_components
from .saliency import resize_map

__all__ = ["common_direction", "ddt_maps", "ddt_components", "collection_features", "fit_logistic", "ddt_head"]


def common_direction(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean descriptor μ and first principal direction v of a collection's features.

    features: ``(N, C, h, w)``, every cell of every image one descriptor.
    Returns μ ``(C,)`` and v ``(C,)`` (unit length, sign arbitrary), in float64.
    The covariance is accumulated image by image, so N × h × w cells never sit in one matrix.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (N, C, h, w); got shape {tuple(features.shape)}.")
    n, c = features.shape[:2]
    total = torch.zeros(c, dtype=torch.float64)
    outer = torch.zeros(c, c, dtype=torch.float64)
    count = 0
    for f in features:
        x = f.detach().to("cpu", torch.float64).reshape(c, -1)  # (C, h·w)
        total += x.sum(1)
        outer += x @ x.T
        count += x.shape[1]
    mean = total / count
    covariance = outer / count - torch.outer(mean, mean)
    direction = torch.linalg.eigh(covariance)[1][:, -1]  # eigenvalues ascend: the last is the largest
    return mean, direction


def ddt_maps(features: torch.Tensor, priors: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """The DDT indicator ⟨f − μ, v⟩ of every cell. ``(N, C, h, w)`` → ``(N, h, w)`` float64.

    priors: optional ``(N, H, W)`` saliency priors (any resolution); the sign of v is chosen so
    that the indicator correlates positively with them (pooled to the feature grid). Without
    priors, the positive side is the one covering fewer cells.
    Positive cells are the common object; 0 is DDT's threshold.
    """
    return _indicator(features, priors)[0].numpy()


def _indicator(features: torch.Tensor, priors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """→ indicator (N, h, w), μ (C,) and the signed direction v (C,), all float64."""
    mean, direction = common_direction(features)
    n, c, h, w = features.shape
    maps = torch.stack(
        [((f.detach().to("cpu", torch.float64).reshape(c, -1).T - mean) @ direction).reshape(h, w) for f in features]
    )
    if priors is not None:
        pooled = _pooled(priors, n, (h, w))
        flip = torch.corrcoef(torch.stack([maps.reshape(-1), pooled.reshape(-1)]))[0, 1] < 0
    else:
        flip = (maps > 0).sum() > (maps < 0).sum()
    return (-maps, mean, -direction) if flip else (maps, mean, direction)


def _pooled(priors, n: int, grid: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) priors averaged over each cell of the (h, w) feature grid → (N, h, w) float64."""
    priors = torch.as_tensor(np.asarray(priors), dtype=torch.float64)
    if priors.ndim != 3 or len(priors) != n:
        raise ValueError(f"priors must be (N, H, W) with N = {n} images; got shape {tuple(priors.shape)}.")
    return F.adaptive_avg_pool2d(priors[:, None], grid)[:, 0]


def fit_logistic(x: torch.Tensor, y: torch.Tensor, steps: int = 25) -> tuple[float, float]:
    """The a, b of σ(a·x + b) closest to soft targets y ∈ [0, 1] in cross-entropy (Newton's method).

    x, y: any shape, same number of elements. The loss is convex in (a, b), so Newton's steps
    from a = 0, b = logit(mean y) converge in a handful of iterations.
    """
    x = x.reshape(-1).to(torch.float64)
    y = y.reshape(-1).to(torch.float64).clamp(0, 1)
    design = torch.stack([x, torch.ones_like(x)], 1)  # (n, 2)
    m = float(y.mean().clamp(1e-4, 1 - 1e-4))
    theta = torch.tensor([0.0, np.log(m / (1 - m))], dtype=torch.float64)
    for _ in range(steps):
        p = torch.sigmoid(design @ theta)
        gradient = design.T @ (p - y)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * torch.eye(2, dtype=torch.float64)
        theta = theta - torch.linalg.solve(hessian, gradient)
    return float(theta[0]), float(theta[1])


def ddt_head(features: torch.Tensor, priors) -> tuple[torch.Tensor, float]:
    """A 1×1 saliency head that starts as DDT: Z = a·⟨f − μ, v⟩ / σ + b.

    features: ``(N, C, h, w)`` the features the head reads; priors: ``(N, H, W)`` saliency priors.
    v is the collection's first principal direction, its sign set by the priors; σ is the
    indicator's standard deviation; (a, b) fit σ(Z) to the priors pooled to the grid
    (:func:`fit_logistic`), so the head starts at the prior's level and with DDT's ordering.
    Returns the head's weight ``(C,)`` and bias, in float64.
    """
    indicator, mean, direction = _indicator(features, priors)
    n, _, h, w = features.shape
    spread = float(indicator.std().clamp_min(1e-12))
    a, b = fit_logistic(indicator / spread, _pooled(priors, n, (h, w)))
    weight = a / spread * direction
    return weight, b - float(weight @ mean)


def ddt_components(
    indicator: np.ndarray, image_shape: tuple[int, int], min_fraction: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """DDT as instances: connected components of the positive indicator at the image's size.

    indicator: ``(h, w)`` one image's row of :func:`ddt_maps`; it is resized bilinearly to
    ``image_shape`` ``(H, W)`` and split at 0. Returns masks ``(K, H, W)`` bool and scores
    ``(K,)`` (the positive indicator mass of each component / image area), best first.
    DDT itself keeps the largest component's box; here every component is an instance.
    """
    positive = np.clip(resize_map(np.asarray(indicator, dtype=np.float64), tuple(image_shape)), 0, None)
    return prior_components(positive, threshold=0.0, min_fraction=min_fraction)


@torch.no_grad()
def collection_features(net, images: list[np.ndarray], size: int, chunk: int = 8) -> torch.Tensor:
    """Backbone features F of every image (network input ``size`` × ``size``) → ``(N, C, h, w)`` on the CPU."""
    from .model import to_input

    device = next(net.parameters()).device
    parts = []
    for i in range(0, len(images), chunk):
        x = net.normalize(to_input(images[i : i + chunk], size).to(device))
        parts.append(net.backbone(x).cpu())
    return torch.cat(parts)
