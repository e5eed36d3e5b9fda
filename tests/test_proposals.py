import numpy as np
import pytest
import scipy.sparse as sp
from scipy import ndimage
from skimage.draw import disk, ellipse

from cosegkit.masks import resize_nearest
from cosegkit.proposals import (
    Proposals,
    adjacent_groups,
    as_proposals,
    generate_proposals,
    merge_regions,
    region_graph,
    tree_membership,
    unique_rows,
    ward_cost,
)

# ------------------------------------------------------------------ helpers


def random_proposals(seed, h=13, w=17, n_leaves=9, n_props=12):
    """Blocky random leaves (some split into several pieces) and random memberships,
    including an empty proposal, the whole image and a single leaf."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, n_leaves, size=(h // 2 + 1, w // 3 + 1))
    leaf = np.kron(coarse, np.ones((2, 3), dtype=int))[:h, :w]
    flip = rng.random((h, w)) < 0.1
    leaf[flip] = rng.integers(0, n_leaves, size=flip.sum())
    membership = rng.random((n_props, n_leaves)) < 0.4
    membership[0] = False  # empty
    membership[1] = True  # everything (touches the whole border)
    membership[2] = np.arange(n_leaves) == leaf[0, 0]  # one leaf, on the border
    return Proposals(leaf, sp.csr_matrix(membership)), membership[:, leaf]


def dense_band(masks, width):
    square = np.ones((width, width), dtype=bool)
    return np.stack([ndimage.binary_dilation(m, square) ^ ndimage.binary_erosion(m, square) for m in masks])


def box(h, w, rows, cols):
    m = np.zeros((h, w), dtype=bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


# ------------------------------------------------------------------ sums against dense references


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_areas_and_region_sums_match_dense_masks(seed):
    props, masks = random_proposals(seed)
    maps = np.random.default_rng(10 + seed).normal(size=(4, *props.shape))
    assert props.n == len(masks) and props.shape == masks.shape[1:]
    np.testing.assert_array_equal(props.areas, masks.sum(axis=(1, 2)))
    expected = np.einsum("phw,mhw->pm", masks.astype(float), maps)
    np.testing.assert_allclose(props.region_sums(maps), expected, atol=1e-12)
    np.testing.assert_allclose(props.region_sums(maps[0]), expected[:, 0], atol=1e-12)


@pytest.mark.parametrize("width", [3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contour_sums_match_dilation_xor_erosion(seed, width):
    props, masks = random_proposals(seed)
    maps = np.random.default_rng(20 + seed).normal(size=(3, *props.shape))
    expected = np.einsum("phw,mhw->pm", dense_band(masks, width).astype(float), maps)
    np.testing.assert_allclose(props.contour_sums(maps, width=width), expected, atol=1e-12)
    # the cached band structure gives the same answer for new maps
    maps2 = maps[::-1] * 2.0
    expected2 = np.einsum("phw,mhw->pm", dense_band(masks, width).astype(float), maps2)
    np.testing.assert_allclose(props.contour_sums(maps2, width=width), expected2, atol=1e-12)


def pixel_maps(h, w):
    """One map per pixel, so contour_sums returns every proposal's band as a 0/1 image."""
    return np.eye(h * w).reshape(h * w, h, w)


def test_contour_band_by_hand():
    # 4 × 6 image, 3 × 3 square; outside the image counts as "not in P".
    h, w = 4, 6
    masks = [box(h, w, (1, 3), (4, 6)), box(h, w, (0, 4), (0, 6)), box(h, w, (1, 2), (1, 2))]
    props = Proposals.from_masks(np.stack(masks))
    bands = props.contour_sums(pixel_maps(h, w), width=3).reshape(3, h, w)
    # P0 = rows 1–2 × cols 4–5: its erosion is empty, band = dilation = rows 0–3 × cols 3–5
    np.testing.assert_array_equal(bands[0], box(h, w, (0, 4), (3, 6)))
    # P1 = the whole image: band = the outer ring (border pixels are eroded away)
    np.testing.assert_array_equal(bands[1], ~box(h, w, (1, 3), (1, 5)))
    # P2 = one pixel: band = its 3 × 3 neighbourhood
    np.testing.assert_array_equal(bands[2], box(h, w, (0, 3), (0, 3)))
    # width 1: dilation = erosion = P, the band is empty
    np.testing.assert_array_equal(props.contour_sums(pixel_maps(h, w), width=1), 0)


def test_switching_contour_widths_keeps_one_band_and_the_same_sums():
    """The band is cached for the last width only (a width sweep over a collection must not keep
    them all), and switching back recomputes exactly the same sums."""
    props, _ = random_proposals(0)
    maps = np.random.default_rng(0).random((2, *props.shape))
    first = {width: props.contour_sums(maps, width=width) for width in (3, 5, 9)}
    assert list(props._bands) == [9]
    for width in (3, 5, 9):
        np.testing.assert_array_equal(props.contour_sums(maps, width=width), first[width])
    assert not np.array_equal(first[3], first[5])


@pytest.mark.parametrize("width", [0, 4, 2.5])
def test_contour_width_must_be_odd(width):
    props, _ = random_proposals(0)
    with pytest.raises(ValueError, match="odd"):
        props.contour_sums(np.zeros((1, *props.shape)), width=width)


def test_maps_of_the_wrong_size_are_refused():
    props, _ = random_proposals(0)
    with pytest.raises(ValueError, match="working resolution"):
        props.region_sums(np.zeros((2, 5, 5)))


@pytest.mark.parametrize("seed", [0, 3])
def test_iou_matrix_matches_dense_masks(seed):
    props, masks = random_proposals(seed)
    a, b = np.arange(props.n), np.arange(props.n)[::-1][:5]
    flat = masks.reshape(len(masks), -1).astype(float)
    inter = flat[a] @ flat[b].T
    union = flat[a].sum(1)[:, None] + flat[b].sum(1)[None] - inter
    expected = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    np.testing.assert_allclose(props.iou_matrix(a, b), expected, atol=1e-12)


def test_iou_by_hand():
    masks = np.zeros((3, 4, 4), bool)
    masks[0, :2] = True  # top half, 8 px
    masks[1, :, :2] = True  # left half, 8 px, overlap 4 → IoU 4/12
    props = Proposals.from_masks(masks)  # masks[2] is empty
    np.testing.assert_allclose(props.iou_matrix([0, 1, 2], [0, 1, 2]), [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 0]])


# ------------------------------------------------------------------ masks, from_masks, as_proposals


@pytest.mark.parametrize("seed", [0, 1])
def test_masks_and_from_masks_round_trip(seed):
    props, masks = random_proposals(seed)
    np.testing.assert_array_equal(props.masks(np.arange(props.n)), masks)
    again = Proposals.from_masks(masks)
    np.testing.assert_array_equal(again.masks(np.arange(again.n)), masks)
    # leaves = distinct membership signatures of the pixels
    signatures = {tuple(col) for col in masks.reshape(len(masks), -1).T}
    assert again.n_leaves == len(signatures)


def test_from_masks_leaves_by_hand():
    masks = np.zeros((2, 2, 3), bool)
    masks[0, :, :2] = True
    masks[1, :, 1:] = True
    props = Proposals.from_masks(masks)  # signatures: col 0 → (1,0), col 1 → (1,1), col 2 → (0,1)
    assert props.n_leaves == 3
    assert len(np.unique(props.leaf_labels[:, 0])) == 1 and len(np.unique(props.leaf_labels)) == 3
    np.testing.assert_array_equal(props.membership.sum(axis=1).A1, [2, 2])


def test_masks_resize_to_original_size_by_nearest():
    leaf = np.array([[0, 1], [2, 3]])
    props = Proposals(leaf, sp.csr_matrix(np.array([[1, 0, 0, 1]], bool)))
    expected = np.kron(np.array([[1, 0], [0, 1]]), np.ones((2, 3))).astype(bool)
    np.testing.assert_array_equal(props.masks([0], out_shape=(4, 6))[0], expected)
    np.testing.assert_array_equal(resize_nearest(np.arange(3)[None], (1, 6)), [[0, 0, 1, 1, 2, 2]])


def test_as_proposals_accepts_objects_lists_and_callables():
    image = np.zeros((4, 5, 3), np.uint8)
    masks = np.zeros((2, 4, 5), bool)
    masks[0, :2] = True
    masks[1, 1:, 1:] = True
    props = Proposals.from_masks(masks)
    assert as_proposals(props, image) is props
    for given in (list(masks), masks.astype(np.uint8), lambda im: masks):
        np.testing.assert_array_equal(as_proposals(given, image).masks([0, 1]), masks)
    with pytest.raises(ValueError, match="image's size"):
        as_proposals(masks[:, :3], image)
    with pytest.raises(ValueError, match="boolean"):
        as_proposals(masks * 0.5, image)


# ------------------------------------------------------------------ building blocks


def test_tree_membership_by_hand():
    merges = np.array([[0, 1], [2, 3], [4, 5]])  # node 4 = {0,1}, 5 = {2,3}, 6 = all
    rows = tree_membership(merges, 4).toarray()
    expected = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]]
    np.testing.assert_array_equal(rows, expected)


def test_merge_regions_merges_similar_neighbours_first():
    # four regions in a row: 0 and 1 look alike, 2 and 3 look alike, 1|2 is a strong edge
    labels = np.repeat(np.arange(4), 3)[None].repeat(3, axis=0)
    gradient = np.zeros(labels.shape)
    gradient[:, 5:7] = 1.0
    gradient[:, 2:4] = gradient[:, 8:10] = 0.1
    graph = region_graph(labels, gradient)
    np.testing.assert_array_equal(graph.edges, [[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(graph.length, [3, 3, 3])
    means = np.array([[0.0], [0.1], [5.0], [5.2]])
    merges = merge_regions(graph, np.full(4, 9.0), means, ward_cost)
    np.testing.assert_array_equal(merges, [[0, 1], [2, 3], [4, 5]])


def test_adjacent_groups_pairs_and_triples():
    # a chain of 4 leaves 0-1-2-3 and a tree whose cut at 4 regions is the leaves themselves
    merges = np.array([[0, 1], [2, 3], [4, 5]])
    nodes = tree_membership(merges, 4)
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    groups = adjacent_groups(nodes, merges, edges, cuts=[4]).toarray()
    got = {tuple(np.flatnonzero(g)) for g in groups}
    assert got == {(0, 1), (1, 2), (2, 3), (0, 1, 2), (1, 2, 3)}
    # cut at 2 regions ({0,1} and {2,3}): one pair, no triple
    groups = adjacent_groups(nodes, merges, edges, cuts=[2]).toarray()
    np.testing.assert_array_equal(groups, [[1, 1, 1, 1]])


def test_unique_rows_keeps_first_of_each_leaf_set():
    m = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]], bool))
    np.testing.assert_array_equal(unique_rows(m), [0, 1, 3])


# ------------------------------------------------------------------ the generator


def synthetic_scene(seed=0):
    """160 × 200 textured background with three objects; the third has two colours
    (a "person": head and body) so only a union of regions recovers it."""
    rng = np.random.default_rng(seed)
    h, w = 160, 200
    yy, xx = np.mgrid[:h, :w]
    background = np.stack([90 + 25 * np.sin(xx / 4.0), 120 + 20 * np.sin((xx + yy) / 6.0), 80 + 0 * xx], -1)
    image = background + rng.normal(0, 8, size=(h, w, 3))
    objects = []
    m = np.zeros((h, w), bool)
    m[ellipse(50, 50, 28, 20, shape=(h, w))] = True
    objects.append((m, [220, 40, 40]))
    m = box(h, w, (95, 145), (20, 90))
    objects.append((m, [40, 60, 220]))
    head = np.zeros((h, w), bool)
    head[disk((40, 150), 12, shape=(h, w))] = True
    body = box(h, w, (52, 140), (132, 168))
    objects.append((head | body, None))
    for m, rgb in objects[:2]:
        image[m] = np.asarray(rgb) + rng.normal(0, 6, size=(m.sum(), 3))
    image[head] = np.array([230, 200, 150]) + rng.normal(0, 6, size=(head.sum(), 3))
    image[body] = np.array([150, 30, 160]) + rng.normal(0, 6, size=(body.sum(), 3))
    return np.clip(image, 0, 255).astype(np.uint8), np.stack([m for m, _ in objects])


@pytest.fixture(scope="module")
def scene_proposals():
    image, objects = synthetic_scene()
    return image, objects, generate_proposals(image, max_side=200)


def test_every_object_is_recovered(scene_proposals):
    image, objects, props = scene_proposals
    assert props.shape == image.shape[:2]
    target = Proposals.from_masks(objects)
    # IoU of every proposal with every object, from the dense masks of all proposals
    masks = props.masks(np.arange(props.n)).reshape(props.n, -1).astype(float)
    obj = objects.reshape(len(objects), -1).astype(float)
    inter = obj @ masks.T
    iou = inter / (obj.sum(1)[:, None] + masks.sum(1)[None] - inter)
    # ≥ 0.96 here; without the adjacent pairs/triples the two-colour object only reaches ~0.85
    assert iou.max(axis=1).min() >= 0.9, iou.max(axis=1)
    assert target.n == 3 and 100 < props.n < 10000


def test_area_filter_and_no_duplicates(scene_proposals):
    image, _, props = scene_proposals
    fractions = props.areas / (props.shape[0] * props.shape[1])
    assert fractions.min() >= 2e-5 and fractions.max() <= 0.85
    assert fractions.max() > 0.3  # large proposals exist before a tighter filter
    small = generate_proposals(image, max_side=200, max_area=0.1, min_area=0.01)
    f_small = small.areas / (small.shape[0] * small.shape[1])
    assert 0 < small.n < props.n and f_small.min() >= 0.01 and f_small.max() <= 0.1
    m = props.membership
    rows = {tuple(m.indices[a:b]) for a, b in zip(m.indptr[:-1], m.indptr[1:])}
    assert len(rows) == props.n


def test_generation_is_deterministic(scene_proposals):
    image, _, props = scene_proposals
    again = generate_proposals(image, max_side=200)
    np.testing.assert_array_equal(again.leaf_labels, props.leaf_labels)
    assert (again.membership != props.membership).nnz == 0


def test_working_resolution_and_input_formats():
    image, objects = synthetic_scene()
    props = generate_proposals(image, max_side=100)
    assert props.shape == (80, 100) and props.leaf_labels.dtype == np.int32
    assert props.masks([0], out_shape=image.shape[:2]).shape == (1, 160, 200)
    gray = image.mean(axis=2).astype(np.uint8)
    from_gray = generate_proposals(gray, max_side=100)
    from_rgb = generate_proposals(np.repeat(gray[..., None], 3, axis=2), max_side=100)
    np.testing.assert_array_equal(from_gray.leaf_labels, from_rgb.leaf_labels)
    rgba = np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(generate_proposals(rgba, max_side=100).leaf_labels, props.leaf_labels)
    with pytest.raises(ValueError, match="min_area"):
        generate_proposals(image, min_area=0.5, max_area=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generate_proposals(image.astype(float))
