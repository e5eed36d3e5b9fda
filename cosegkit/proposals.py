"""Unsupervised object proposals: a few thousand candidate masks per image (spec §7, step 4).

DeepCO3 does not draw masks itself: for every peak it *chooses* the best of a set of
candidate masks ("proposals"). The paper used MCG (MATLAB); this module builds
proposals with numpy, scipy and scikit-image, in four steps, at a working resolution
whose longer side is ``max_side`` (500) pixels:

1. **Leaves.** A watershed of the Lab colour gradient, grown from a regular grid of
   ~1500 seeds, cuts the image into small regions that follow colour edges.
2. **Two merge hierarchies.** Starting from the leaves, repeatedly merge the two
   neighbouring regions with the lowest cost, until one region is left
   (:func:`merge_regions`). Every merge is a proposal. Two costs give two different
   trees (:func:`ward_cost`, :func:`contrast_cost`).
3. **Adjacent groups** (MCG-style). Cut each tree where it has 8, 16, 32 and 64
   regions; every pair and every chain of three adjacent regions is a proposal
   (:func:`adjacent_groups`). People split into head, clothes and legs, and objects
   split by a highlight or a shadow, are recovered this way.
4. **Filter.** Keep proposals covering between ``min_area`` and ``max_area`` of the
   image; drop repeated ones (same set of leaves).

**Storage.** Every proposal is a union of leaves, so :class:`Proposals` keeps only the
leaf label map ``(h, w)`` and a sparse membership matrix ``(P, L)``. Full masks for
thousands of proposals would cost ~0.9 s and ~800 MB per image; instead areas, IoUs
and the ranking's sums are sparse matrix products, and full masks are built only for
the proposals finally selected (:meth:`Proposals.masks`).

Measured on 30 Penn-Fudan / 30 balloon images at ≤ 500 px on a 2-core CPU
(``benchmarks/proposals_recall.py``, table in ``benchmarks/results/proposals.md``):
~5000 proposals in ~0.4 s per image; best-proposal IoU ≥ 0.5 for 92 % of the
pedestrians and 95 % of the balloons (one tree without the groups: 31 % and 89 %).

Bring your own proposals with :meth:`Proposals.from_masks` or :func:`as_proposals`.

    >>> import numpy as np
    >>> masks = np.zeros((2, 4, 4), bool); masks[0, :2] = True; masks[1, :, :2] = True
    >>> props = Proposals.from_masks(masks)
    >>> props.n, props.shape, props.areas.tolist()
    (2, (4, 4), [8, 8])
    >>> props.iou_matrix([0], [1]).round(3).tolist()
    [[0.333]]
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp
from skimage import color, filters, segmentation, transform, util

from .masks import resize_nearest

__all__ = [
    "Proposals",
    "generate_proposals",
    "as_proposals",
    "oversegment",
    "region_graph",
    "merge_regions",
    "ward_cost",
    "contrast_cost",
    "tree_membership",
    "adjacent_groups",
    "unique_rows",
]


# ============================================================================ storage


class _Band(NamedTuple):
    """Everything :meth:`Proposals.contour_sums` needs for one window width."""

    pixels: np.ndarray  # (K,) flat indices of pixels whose window holds ≥ 2 leaves
    pixel_to_set: sp.csr_matrix  # (U, K) 1 where pixel k has window leaf set u
    in_band: sp.csr_matrix  # (P, U) 1 where set u lies partly inside proposal p


class Proposals:
    """Candidate masks stored as a leaf label map plus a sparse leaf membership matrix.

    Attributes:
        leaf_labels: ``(h, w)`` int32, values ``0 … L−1`` — the leaves at the working resolution.
        membership: ``(P, L)`` bool CSR — entry ``[p, l]`` is 1 when leaf ``l`` belongs to proposal ``p``.

    Proposal ``p`` is the mask ``membership[p].toarray()[0][leaf_labels]``. All sums
    below are exact at the working resolution ``shape``.
    """

    def __init__(self, leaf_labels: np.ndarray, membership) -> None:
        leaf_labels = np.asarray(leaf_labels)
        if leaf_labels.ndim != 2 or not np.issubdtype(leaf_labels.dtype, np.integer):
            raise ValueError(
                f"leaf_labels must be an (h, w) integer array; got {leaf_labels.dtype} {leaf_labels.shape}."
            )
        membership = sp.csr_matrix(membership, dtype=bool)
        membership.sum_duplicates()
        membership.eliminate_zeros()
        membership.sort_indices()
        n_leaves = membership.shape[1]
        if leaf_labels.size and (leaf_labels.min() < 0 or leaf_labels.max() >= n_leaves):
            raise ValueError(
                f"leaf_labels must lie in 0…{n_leaves - 1} (membership has {n_leaves} leaf columns); "
                f"got values {leaf_labels.min()}…{leaf_labels.max()}."
            )
        self.leaf_labels = leaf_labels.astype(np.int32, copy=False)
        self.membership = membership
        self.leaf_areas = np.bincount(self.leaf_labels.ravel(), minlength=n_leaves)  # (L,) pixels per leaf
        self._areas = np.asarray(self._weights() @ self.leaf_areas).astype(np.int64)
        self._leaf_pixels = None  # (L, h·w) indicator, built on first use (release_caches drops it)
        self._bands: dict[int, _Band] = {}

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int]:
        """Working resolution ``(h, w)``."""
        return tuple(self.leaf_labels.shape)

    @property
    def n(self) -> int:
        """Number of proposals ``P``."""
        return self.membership.shape[0]

    @property
    def n_leaves(self) -> int:
        """Number of leaves ``L``."""
        return self.membership.shape[1]

    @property
    def areas(self) -> np.ndarray:
        """``(P,)`` int: pixels of every proposal at the working resolution."""
        return self._areas

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Proposals(n={self.n}, shape={self.shape}, leaves={self.n_leaves})"

    def __getstate__(self) -> dict:  # pickle without the caches (they are rebuilt on demand)
        return {**self.__dict__, "_leaf_pixels": None, "_bands": {}}

    def __setstate__(self, state: dict) -> None:
        state.pop("_weights", None)  # kept as an attribute by earlier versions; now made on demand
        self.__dict__.update(state)

    def release_caches(self) -> None:
        """Drop the pixel indicator and the contour band (several MB per image at 500 px; rebuilt on demand).
        :func:`cosegkit.cosegment` calls it once an image's ranking terms are computed and cached."""
        self._leaf_pixels, self._bands = None, {}

    def _weights(self, rows=None) -> sp.csr_matrix:
        """The membership (of ``rows``, default all) as float64 for products, made when needed, not kept."""
        return (self.membership if rows is None else self.membership[rows]).astype(np.float64)

    # ------------------------------------------------------------------ sums
    def _as_maps(self, maps) -> tuple[np.ndarray, bool]:
        maps = np.asarray(maps, dtype=np.float64)
        single = maps.ndim == 2
        if single:
            maps = maps[None]
        if maps.ndim != 3 or maps.shape[1:] != self.shape:
            raise ValueError(
                f"maps must be (M, h, w) with (h, w) = {self.shape}, the proposals' working resolution; "
                f"got shape {maps.shape}. Resize the maps to `proposals.shape` first."
            )
        return maps.reshape(len(maps), -1), single

    def region_sums(self, maps) -> np.ndarray:
        """⟨X_m, P⟩ = Σ of map m over the pixels of P, for all pairs. ``(M, h, w)`` → ``(P, M)``.

        Computed as leaf sums ``(L, M)`` followed by ``membership @ leaf_sums``.
        A single ``(h, w)`` map gives ``(P,)``.
        """
        flat, single = self._as_maps(maps)
        if self._leaf_pixels is None:
            labels = self.leaf_labels.ravel()
            self._leaf_pixels = sp.csr_matrix(
                (np.ones(labels.size), (labels, np.arange(labels.size))), shape=(self.n_leaves, labels.size)
            )
        leaf_sums = self._leaf_pixels @ flat.T  # (L, M)
        sums = np.asarray(self._weights() @ leaf_sums)  # (P, M)
        return sums[:, 0] if single else sums

    def contour_sums(self, maps, width: int = 5) -> np.ndarray:
        """⟨X_m, P̂⟩ over every proposal's contour band. ``(M, h, w)`` → ``(P, M)``.

        P̂ = dilate(P) XOR erode(P) with a ``width × width`` square — exactly what
        ``ndimage.binary_dilation(P, s) ^ ndimage.binary_erosion(P, s)`` gives with
        ``s = np.ones((width, width))`` and scipy's default ``border_value=0``: outside
        the image counts as *not in P*, so pixels of P closer than ``width // 2`` to the
        image border are in the band.

        How it is computed without masks: a pixel x is in P̂ exactly when its window
        holds a leaf of P and also a leaf not in P (or the outside). Only pixels whose
        window holds two or more leaves can qualify; they are grouped by their window's
        leaf set u. The counts |u ∩ P| for all (P, u) are one sparse product, and the
        band test ``0 < |u ∩ P| < |u|`` gives a sparse ``(P, U)`` matrix, cached per
        width. Each call then costs a sparse ``(U, K)`` sum plus one product.
        """
        flat, single = self._as_maps(maps)
        band = self._band(width)
        set_sums = band.pixel_to_set @ flat[:, band.pixels].T  # (U, M)
        sums = np.asarray(band.in_band @ set_sums)  # (P, M)
        return sums[:, 0] if single else sums

    def _band(self, width: int) -> _Band:
        if width in self._bands:
            return self._bands[width]
        if int(width) != width or width < 1 or width % 2 == 0:
            raise ValueError(f"contour width must be an odd positive integer (e.g. 3 or 5); got {width!r}.")
        width = int(width)
        h, w = self.shape
        outside = self.n_leaves  # a label for "outside the image", in no proposal
        labels = self.leaf_labels
        hi = ndi.maximum_filter(labels, size=width, mode="constant", cval=outside)
        lo = ndi.minimum_filter(labels, size=width, mode="constant", cval=outside)
        pixels = np.flatnonzero(hi != lo)  # (K,) windows with ≥ 2 labels
        r = width // 2
        padded = np.pad(labels, r, constant_values=outside)
        ys, xs = np.divmod(pixels, w)
        window = np.stack([padded[ys + dy, xs + dx] for dy in range(width) for dx in range(width)], axis=1)
        # canonical form of each window's set: sorted distinct labels, then padding
        window.sort(axis=1)
        repeated = np.zeros(window.shape, dtype=bool)
        repeated[:, 1:] = window[:, 1:] == window[:, :-1]
        pad = outside + 1
        window[repeated] = pad
        window.sort(axis=1)
        set_size = (~repeated).sum(axis=1)
        window = window[:, : set_size.max(initial=1)]
        sets, pixel_set = np.unique(window, axis=0, return_inverse=True)  # (U, s), (K,)
        pixel_set = pixel_set.ravel()
        n_sets = len(sets)
        sizes = (sets != pad).sum(axis=1)  # (U,) |u|, the outside included
        rows, cols = np.nonzero(sets < outside)
        set_leaves = sp.csr_matrix(
            (np.ones(len(rows)), (rows, sets[rows, cols])), shape=(n_sets, self.n_leaves)
        )  # (U, L)
        counts = (self._weights() @ set_leaves.T).tocsr()  # (P, U) |u ∩ P|, stored only where > 0
        counts.data = (counts.data < sizes[counts.indices]).astype(np.float64)
        counts.eliminate_zeros()
        pixel_to_set = sp.csr_matrix(
            (np.ones(len(pixels)), (pixel_set, np.arange(len(pixels)))), shape=(n_sets, len(pixels))
        )
        band = _Band(pixels, pixel_to_set, counts)
        # keep the band of the last width only: a sweep over widths on a whole collection would
        # otherwise keep every width's band on every image (Penn-Fudan: 11, 16 and 29 MB per
        # image for widths 3, 5 and 9)
        self._bands = {width: band}
        return band

    # ------------------------------------------------------------------ masks and IoU
    def _index(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = np.atleast_1d(idx).astype(np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < -self.n or idx.max() >= self.n)):
            raise IndexError(f"proposal indices must be a 1-D list in 0…{self.n - 1}; got {np.asarray(indices)!r}.")
        return idx

    def masks(self, indices, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Full boolean masks of some proposals. ``(K,)`` → ``(K, h, w)``, or ``(K, H, W)``.

        ``out_shape=(H, W)`` (usually the original image size) resizes with nearest
        neighbour (the leaf map is resized, then looked up).
        """
        idx = self._index(indices)
        table = self.membership[idx].toarray()  # (K, L)
        labels = self.leaf_labels if out_shape is None else resize_nearest(self.leaf_labels, out_shape)
        return table[:, labels]

    def iou_matrix(self, indices_a, indices_b) -> np.ndarray:
        """Mask IoU at the working resolution between two lists of proposals. → ``(Ka, Kb)``.

        Intersections are ``A · diag(leaf_areas) · Bᵀ`` on the membership rows; a pair of
        empty proposals has IoU 0.
        """
        a, b = self._index(indices_a), self._index(indices_b)
        inter = (self._weights(a).multiply(self.leaf_areas[None, :]) @ self._weights(b).T).toarray()
        union = self._areas[a][:, None] + self._areas[b][None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_masks(cls, masks) -> Proposals:
        """Proposals from explicit boolean masks ``(P, h, w)``; the working resolution is ``(h, w)``.

        The leaves are the pixel groups with the same membership signature (the set of
        masks they belong to), so every mask is exactly a union of leaves.
        """
        masks = np.asarray(masks)
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3:
            raise ValueError(f"masks must be (P, h, w), one boolean mask per proposal; got shape {masks.shape}.")
        if masks.dtype != bool:
            if not np.isin(masks, (0, 1)).all():
                raise ValueError("masks must be boolean (or 0/1); threshold soft masks first, e.g. masks > 0.5.")
            masks = masks.astype(bool)
        n, h, w = masks.shape
        flat = masks.reshape(n, h * w)
        if n == 0:
            return cls(np.zeros((h, w), np.int32), sp.csr_matrix((0, 1), dtype=bool))
        bits = np.ascontiguousarray(np.packbits(flat, axis=0).T)  # (h·w, ⌈P/8⌉) one signature per pixel
        signature = bits.view(np.dtype((np.void, bits.shape[1]))).ravel()
        _, first, leaf = np.unique(signature, return_index=True, return_inverse=True)
        return cls(leaf.reshape(h, w).astype(np.int32), sp.csr_matrix(flat[:, first]))


def as_proposals(obj, image: np.ndarray) -> Proposals:
    """Turn what a user gave into :class:`Proposals` for ``image`` ``(H, W, C)``.

    ``obj`` may be a :class:`Proposals` (returned as is), masks ``(P, H, W)`` (an array
    or a list of ``(H, W)`` masks) at the image's size, or a callable ``image → masks``.
    """
    if callable(obj) and not isinstance(obj, Proposals):
        obj = obj(image)
    if isinstance(obj, Proposals):
        return obj
    if obj is None:
        raise TypeError("No proposals given: pass a Proposals, masks (P, H, W) or a callable image -> masks.")
    masks = np.stack([np.asarray(m) for m in obj]) if isinstance(obj, (list, tuple)) else np.asarray(obj)
    if masks.ndim != 3:
        raise ValueError(f"Proposal masks must be (P, H, W); got shape {masks.shape}.")
    size = tuple(np.asarray(image).shape[:2])
    if masks.shape[1:] != size:
        raise ValueError(
            f"Proposal masks are {masks.shape[1:]} but the image is {size}; "
            "give one mask per proposal at the image's size."
        )
    return Proposals.from_masks(masks)


# ============================================================================ generation


def _as_rgb_float(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1|3|4)`` integer or [0, 1] float image → ``(H, W, 3)`` float64 in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4); got shape {image.shape}.")
    if np.issubdtype(image.dtype, np.floating):
        if image.size and (image.min() < 0 or image.max() > 1):
            raise ValueError("float images must lie in [0, 1]; pass uint8 or divide by 255.")
        image = image.astype(np.float64)
    elif image.dtype == bool:
        image = image.astype(np.float64)
    elif np.issubdtype(image.dtype, np.integer):
        image = util.img_as_float(image)
    else:
        raise ValueError(f"image dtype {image.dtype} is not supported; use uint8.")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image[..., :3]


def working_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(H, W)`` scaled so that the longer side is at most ``max_side`` (never enlarged)."""
    H, W = shape
    scale = min(1.0, max_side / max(H, W))
    return max(1, round(H * scale)), max(1, round(W * scale))


def _resize(image: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased downscale ``(H, W, 3)`` → ``(h, w, 3)``: block means first (fast), then a smooth resize."""
    H, W = image.shape[:2]
    if (H, W) == tuple(out_shape):
        return image
    f = int(min(H / out_shape[0], W / out_shape[1]))
    if f >= 2:
        Hc, Wc = H // f * f, W // f * f
        image = image[:Hc, :Wc].reshape(Hc // f, f, Wc // f, f, 3).mean(axis=(1, 3))
    return transform.resize(image, out_shape, anti_aliasing=True)


def lab_gradient(lab: np.ndarray) -> np.ndarray:
    """Colour edge strength: the sum of the Sobel magnitudes of L, a and b. ``(h, w, 3)`` → ``(h, w)``."""
    return sum(filters.sobel(lab[..., c]) for c in range(3))


def oversegment(gradient: np.ndarray, n_regions: int = 1500) -> np.ndarray:
    """Leaves: watershed of ``gradient`` ``(h, w)`` from a regular grid of about ``n_regions`` seeds.

    Returns ``(h, w)`` int32 labels ``0 … L−1``.
    """
    n_regions = int(max(1, min(n_regions, gradient.size // 16)))
    labels = segmentation.watershed(gradient, markers=n_regions, compactness=0.001)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(gradient.shape).astype(np.int32)


class RegionGraph(NamedTuple):
    """Adjacency of the leaves: edges between 4-connected neighbours."""

    edges: np.ndarray  # (E, 2) int, a < b
    length: np.ndarray  # (E,) pixel pairs along the shared boundary
    contrast: np.ndarray  # (E,) sum of edge strength along the shared boundary


def region_graph(labels: np.ndarray, gradient: np.ndarray) -> RegionGraph:
    """Region adjacency graph of ``labels`` ``(h, w)``; each boundary pixel pair counts
    ``max(gradient)`` of its two pixels towards the edge's contrast."""
    n = int(labels.max()) + 1
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()]).astype(np.int64)
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()]).astype(np.int64)
    g = np.concatenate(
        [np.maximum(gradient[:, :-1], gradient[:, 1:]).ravel(), np.maximum(gradient[:-1, :], gradient[1:, :]).ravel()]
    )
    cross = a != b
    key = np.minimum(a[cross], b[cross]) * n + np.maximum(a[cross], b[cross])
    keys, edge = np.unique(key, return_inverse=True)
    return RegionGraph(
        np.stack([keys // n, keys % n], axis=1),
        np.bincount(edge, minlength=len(keys)).astype(np.float64),
        np.bincount(edge, weights=g[cross], minlength=len(keys)),
    )


# A merge cost takes, for K candidate pairs (a, b): sizes (K,), (K,), mean colours
# (K, 3), (K, 3) and the mean edge strength along their shared boundary (K,); lower
# costs merge first.
MergeCost = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def ward_cost(size_a, size_b, mean_a, mean_b, contrast):
    """Ward's increase of within-region colour variance, times the boundary's contrast.

    ``size_a·size_b/(size_a+size_b) · ‖μ_a − μ_b‖² · contrast``: similar neighbours
    separated by a weak edge merge first; big regions resist merging (balanced trees).
    """
    return size_a * size_b / (size_a + size_b) * ((mean_a - mean_b) ** 2).sum(axis=1) * contrast


def contrast_cost(size_a, size_b, mean_a, mean_b, contrast):
    """Boundary contrast times √(smaller size): weak edges and small regions go first.

    Close to a watershed hierarchy ordered by basin volume (area × depth).
    """
    return contrast * np.sqrt(np.minimum(size_a, size_b))


def merge_regions(graph: RegionGraph, sizes: np.ndarray, means: np.ndarray, cost: MergeCost) -> np.ndarray:
    """Greedy agglomeration on a region graph: merge the cheapest adjacent pair, repeat.

    Args:
        graph: adjacency of ``L`` regions.
        sizes: ``(L,)`` pixels per region; means: ``(L, C)`` mean colour per region.
        cost: a :data:`MergeCost` such as :func:`ward_cost`.

    Returns:
        merges ``(L − r, 2)`` int: merge ``j`` joins nodes ``merges[j]`` into the new node
        ``L + j`` (``r`` = number of connected components, 1 for an image). Ties are
        broken by node ids, so the result is deterministic.
    """
    L = len(sizes)
    N = 2 * L - 1
    size = np.zeros(N)
    size[:L] = sizes
    mean = np.zeros((N, means.shape[1]))
    mean[:L] = means
    # neighbours[a][b] = [boundary length, boundary contrast sum]
    neighbours: list[dict | None] = [dict() for _ in range(N)]
    for (a, b), n_pix, c in zip(graph.edges.tolist(), graph.length.tolist(), graph.contrast.tolist()):
        neighbours[a][b] = neighbours[b][a] = (n_pix, c)
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    costs = cost(size[a], size[b], mean[a], mean[b], graph.contrast / graph.length)
    heap = list(zip(costs.tolist(), a.tolist(), b.tolist()))
    heapq.heapify(heap)
    alive = np.zeros(N, dtype=bool)
    alive[:L] = True
    merges = []
    new = L
    while heap:
        _, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue  # a stale entry: one side was merged already
        alive[a] = alive[b] = False
        alive[new] = True
        size[new] = size[a] + size[b]
        mean[new] = (size[a] * mean[a] + size[b] * mean[b]) / size[new]
        joined = {c: v for c, v in neighbours[a].items() if c != b}
        for c, (n_pix, s) in neighbours[b].items():
            if c != a:
                n0, s0 = joined.get(c, (0.0, 0.0))
                joined[c] = (n0 + n_pix, s0 + s)
        for c, v in joined.items():
            nb = neighbours[c]
            nb.pop(a, None)
            nb.pop(b, None)
            nb[new] = v
        neighbours[new], neighbours[a], neighbours[b] = joined, None, None
        merges.append((a, b))
        if joined:
            cs = np.fromiter(joined, dtype=np.int64, count=len(joined))
            stats = np.array(list(joined.values()))
            k = len(cs)
            new_costs = cost(
                np.full(k, size[new]), size[cs], np.repeat(mean[new][None], k, 0), mean[cs], stats[:, 1] / stats[:, 0]
            )
            for c_cost, c in zip(new_costs.tolist(), cs.tolist()):
                heapq.heappush(heap, (c_cost, c, new))
        new += 1
    return np.array(merges, dtype=np.int64).reshape(-1, 2)


def tree_membership(merges: np.ndarray, n_leaves: int) -> sp.csr_matrix:
    """Leaf sets of every node of a merge tree. → ``(L + len(merges), L)`` bool CSR.

    Rows ``0 … L−1`` are the leaves themselves, row ``L + j`` is merge ``j``. Leaves are
    ordered depth-first so that every node is one contiguous run of that order.
    """
    L, n_nodes = n_leaves, n_leaves + len(merges)
    count = np.ones(n_nodes, dtype=np.int64)
    for j, (a, b) in enumerate(merges.tolist()):
        count[L + j] = count[a] + count[b]
    has_parent = np.zeros(n_nodes, dtype=bool)
    has_parent[merges.ravel()] = True
    start = np.zeros(n_nodes, dtype=np.int64)
    roots = np.flatnonzero(~has_parent)
    start[roots] = np.concatenate([[0], np.cumsum(count[roots])[:-1]])
    for j in range(len(merges) - 1, -1, -1):  # parents before children
        a, b = merges[j]
        start[a] = start[L + j]
        start[b] = start[L + j] + count[a]
    order = np.empty(L, dtype=np.int64)
    order[start[:L]] = np.arange(L)
    # row i holds order[start[i] : start[i] + count[i]]
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    indices = order[np.repeat(start, count) + offsets]
    indptr = np.concatenate([[0], np.cumsum(count)])
    return sp.csr_matrix((np.ones(len(indices), dtype=bool), indices, indptr), shape=(n_nodes, L))


def adjacent_groups(nodes: sp.csr_matrix, merges: np.ndarray, edges: np.ndarray, cuts: Sequence[int]) -> sp.csr_matrix:
    """Pairs and chains of three adjacent regions at several cuts of a merge tree.

    Args:
        nodes: ``(L + len(merges), L)`` leaf sets of the tree (:func:`tree_membership`).
        merges: ``(L − 1, 2)`` the tree; edges: ``(E, 2)`` leaf adjacency.
        cuts: numbers of regions at which to cut, e.g. ``(8, 16, 32, 64)``.

    Returns:
        ``(G, L)`` bool CSR: for every cut into ``k`` regions, every adjacent pair
        ``{a, b}`` and every triple ``{a, c, b}`` with ``c`` adjacent to both.
    """
    L = nodes.shape[1]
    consumed = np.full(nodes.shape[0], np.iinfo(np.int64).max)  # merge step that used the node
    consumed[merges.ravel()] = np.repeat(np.arange(len(merges)), 2)
    groups = []
    for k in cuts:
        n_merged = L - int(k)
        if k < 2 or n_merged < 0 or n_merged > len(merges):
            continue
        regions = np.flatnonzero(consumed[: L + n_merged] >= n_merged)  # the k regions after n_merged merges
        R = nodes[regions]  # (k, L)
        region_of_leaf = np.empty(L, dtype=np.int64)
        region_of_leaf[R.indices] = np.repeat(np.arange(len(regions)), np.diff(R.indptr))
        a, b = region_of_leaf[edges[:, 0]], region_of_leaf[edges[:, 1]]
        cross = a != b
        pairs = np.unique(np.stack([np.minimum(a[cross], b[cross]), np.maximum(a[cross], b[cross])], 1), axis=0)
        adjacency = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(regions),) * 2)
        adjacency = (adjacency + adjacency.T).tocsr()
        triples = []
        for c in range(len(regions)):
            nb = adjacency.indices[adjacency.indptr[c] : adjacency.indptr[c + 1]]
            i, j = np.triu_indices(len(nb), k=1)
            triples.append(np.stack([np.full(len(i), c), nb[i], nb[j]], 1))
        triples = np.unique(np.sort(np.concatenate(triples), axis=1), axis=0)
        n_pairs, n_triples = len(pairs), len(triples)
        rows = np.concatenate([np.repeat(np.arange(n_pairs), 2), n_pairs + np.repeat(np.arange(n_triples), 3)])
        cols = np.concatenate([pairs.ravel(), triples.ravel()])
        choose = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_pairs + n_triples, len(regions)))
        groups.append(choose @ R.astype(np.float64))
    if not groups:
        return sp.csr_matrix((0, L), dtype=bool)
    return sp.vstack(groups).tocsr().astype(bool)


def unique_rows(membership: sp.csr_matrix) -> np.ndarray:
    """Indices of the first occurrence of every distinct row (same leaf set), in order. → ``(P',)``."""
    m = membership.tocsr()
    m.sort_indices()
    seen: set[bytes] = set()
    keep = []
    for i in range(m.shape[0]):
        key = m.indices[m.indptr[i] : m.indptr[i + 1]].tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


COSTS: dict[str, MergeCost] = {"ward": ward_cost, "contrast": contrast_cost}


def generate_proposals(
    image: np.ndarray,
    max_side: int = 500,
    min_area: float = 2e-5,
    max_area: float = 0.85,
    seed: int = 0,
    *,
    n_leaves: int = 1500,
    hierarchies: Sequence[str] = ("ward", "contrast"),
    cuts: Sequence[int] = (8, 16, 32, 64),
) -> Proposals:
    """Unsupervised object proposals for one image (see the module docstring).

    Args:
        image: ``(H, W, 3)`` uint8 (gray, RGBA and [0, 1] floats are accepted too).
        max_side: working resolution: longer side at most this many pixels.
        min_area, max_area: keep proposals covering this fraction of the image.
        seed: kept for a uniform call signature; the generator uses no randomness and
            gives the same proposals for the same image every time.
        n_leaves: about this many leaves (finer leaves catch smaller objects).
        hierarchies: merge costs to build trees with, names in :data:`COSTS`.
        cuts: cut every tree at these region counts for pairs and triples.

    Returns:
        :class:`Proposals` at ``working_shape((H, W), max_side)``, about 5000 for a 500 × 375 photo.
    """
    if not 0 <= min_area <= max_area:
        raise ValueError(f"Need 0 ≤ min_area ≤ max_area; got min_area={min_area}, max_area={max_area}.")
    if max_side < 8:
        raise ValueError(f"max_side must be at least 8 pixels; got {max_side}.")
    unknown = [h for h in hierarchies if h not in COSTS]
    if unknown:
        raise ValueError(f"Unknown hierarchies {unknown}; choose from {sorted(COSTS)}.")
    rgb = _as_rgb_float(image)
    h, w = working_shape(rgb.shape[:2], max_side)
    lab = color.rgb2lab(_resize(rgb, (h, w)))
    gradient = lab_gradient(lab)
    leaves = oversegment(gradient, n_leaves)
    L = int(leaves.max()) + 1
    graph = region_graph(leaves, gradient)
    sizes = np.bincount(leaves.ravel(), minlength=L).astype(np.float64)
    means = np.stack([np.bincount(leaves.ravel(), weights=lab[..., c].ravel(), minlength=L) for c in range(3)], 1)
    means /= sizes[:, None]
    parts = []
    for name in hierarchies:
        merges = merge_regions(graph, sizes, means, COSTS[name])
        nodes = tree_membership(merges, L)
        parts += [nodes[L:], adjacent_groups(nodes, merges, graph.edges, cuts)]
    membership = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, L), dtype=bool)
    fraction = (membership.astype(np.float64) @ sizes) / (h * w)
    membership = membership[(fraction >= min_area) & (fraction <= max_area)]
    membership = membership[unique_rows(membership)]
    return Proposals(leaves, membership)


# ============================================================================ sources

PROPOSAL_SOURCES = ("hierarchy", "sam", "both")


def proposals_for(
    image: np.ndarray, config, peaks: np.ndarray | None = None, logits: np.ndarray | None = None
) -> Proposals:
    """The proposals ``config.proposals`` names, for one image (what :func:`cosegkit.cosegment` uses).

    - ``"hierarchy"``: :func:`generate_proposals` (watershed trees + adjacent groups);
    - ``"sam"``: the promptable segmenter's three masks for a point at each of ``peaks`` (``(M, 2)`` cells of
      ``logits (hz, wz)``; :func:`cosegkit.cosegment` passes the peaks at or above the peak threshold;
      :func:`cosegkit.sam.prompted_proposals`);
    - ``"both"``: the union of the two (:func:`cosegkit.sam.combine_proposals`).

    ``Result.rerank`` with a lower peak threshold keeps these proposals: its new peaks choose among them.
    """
    source = getattr(config, "proposals", "hierarchy")
    if source not in PROPOSAL_SOURCES:
        raise ValueError(f"Unknown proposals {source!r}; choose one of {PROPOSAL_SOURCES}.")
    work = working_shape(np.asarray(image).shape[:2], config.proposal_max_side)
    parts = []
    if source in ("hierarchy", "both"):
        parts.append(
            generate_proposals(
                image,
                max_side=config.proposal_max_side,
                seed=config.seed,  # areas between 2e-5 and 0.85 of the image (spec §7.4)
            )
        )
    if source in ("sam", "both"):
        if peaks is None or logits is None:
            raise ValueError(f"proposals={source!r} prompts at the peaks of Z: pass peaks and logits.")
        from .sam import prompted_proposals, segmenter_for

        parts.append(
            prompted_proposals(
                segmenter_for(config),
                image,
                peaks,
                logits.shape,
                work,
            )
        )
    if len(parts) == 1:
        return parts[0]
    from .sam import combine_proposals

    return combine_proposals(*parts)
