"""COCO, VOC and SBD loaders and the paper's collection rules, on tiny hand-made files with known pixels."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image
from pycocotools import mask as mask_utils

from cosegkit.data import Collection, CollectionError, ImageLoadError
from cosegkit.datasets import (
    COCO_VOC_CATEGORIES,
    VOC_CLASSES,
    build_collections,
    download_balloon,
    download_coco_annotations,
    load_coco,
    load_collection,
    load_voc_instances,
    merge_coco_annotations,
)
from cosegkit.datasets.coco import annotation_mask
from cosegkit.datasets.download import DownloadError, download_pennfudan
from cosegkit.datasets.voc import instances_from_sbd_mat, voc_class_index

H, W = 6, 7  # size of every COCO test image

# ------------------------------------------------------------------ hand-made masks

# Rectangle with corners (x, y) = (1, 1) and (4, 3): COCO pixel (x, y) covers [x, x+1) × [y, y+1),
# so it holds columns 1..3 of rows 1..2.
RECT_POLYGON = [[1, 1, 4, 1, 4, 3, 1, 3]]
RECT = np.zeros((H, W), bool)
RECT[1:3, 1:4] = True

# Two polygons in one annotation: an L (row 0 columns 0..2, rows 1..2 column 0) and a 1×2 bar at column 6, rows 4..5.
L_POLYGONS = [[0, 0, 3, 0, 3, 1, 1, 1, 1, 3, 0, 3], [6, 4, 7, 4, 7, 6, 6, 6]]
L_SHAPE = np.zeros((H, W), bool)
L_SHAPE[0, 0:3] = True
L_SHAPE[1:3, 0] = True
L_SHAPE[4:6, 6] = True

# Uncompressed RLE: runs of 0s and 1s down the columns (column-major). Column 5 rows 2..4 and column 6 rows 0..1.
RLE_MASK = np.zeros((H, W), bool)
RLE_MASK[2:5, 5] = True
RLE_MASK[0:2, 6] = True
RLE_COUNTS = [5 * H + 2, 3, 1, 2, 4]  # 32 zeros, 3 ones, 1 zero, 2 ones, 4 zeros = 42 pixels
CROWD_MASK = np.zeros((H, W), bool)
CROWD_MASK[4:6, 0:3] = True


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}  # as stored in json


def test_hand_made_masks_are_what_the_comments_say():
    assert RECT.sum() == 6 and L_SHAPE.sum() == 7 and RLE_MASK.sum() == 5
    assert sum(RLE_COUNTS) == H * W
    flat = RLE_MASK.flatten(order="F").astype(int)  # the runs, read back from the hand-made mask
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, flat, -1]))).tolist()
    assert runs == RLE_COUNTS


@pytest.mark.parametrize(
    "segmentation, expected",
    [
        (RECT_POLYGON, RECT),
        (L_POLYGONS, L_SHAPE),
        ({"size": [H, W], "counts": RLE_COUNTS}, RLE_MASK),
        (_compressed_rle(CROWD_MASK), CROWD_MASK),
    ],
)
def test_annotation_mask_decodes_polygons_and_rle(segmentation, expected):
    mask = annotation_mask(segmentation, H, W)
    assert mask.dtype == bool and mask.shape == (H, W)
    np.testing.assert_array_equal(mask, expected)


def test_annotation_mask_rejects_inconsistent_rle():
    with pytest.raises(CollectionError, match=r"RLE mask of size 7×6.*6×7"):
        annotation_mask({"size": [W, H], "counts": RLE_COUNTS}, H, W)
    with pytest.raises(CollectionError, match="add up to 41"):
        annotation_mask({"size": [H, W], "counts": RLE_COUNTS[:-1] + [3]}, H, W)
    assert not annotation_mask([[1, 1, 3, 3]], H, W).any()  # fewer than 3 points: no pixel (not read as a box)


# ------------------------------------------------------------------ COCO files


def _write_image(path, height=H, width=W, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)


def _box(x, y, w=1, h=1):
    """A w×h rectangle polygon whose top-left pixel is (x, y)."""
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _coco_dict():
    """Images 1..4 (dogs, one also a person, one with a crowd) in a file with four categories."""
    images = [{"id": i, "file_name": f"{i:012d}.png", "height": H, "width": W} for i in (1, 2, 3, 4)]
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 18, "segmentation": RECT_POLYGON, "iscrowd": 0},
        {
            "id": 11,
            "image_id": 1,
            "category_id": 18,
            "segmentation": {"size": [H, W], "counts": RLE_COUNTS},
            "iscrowd": 0,
        },
        {"id": 12, "image_id": 1, "category_id": 18, "segmentation": _compressed_rle(CROWD_MASK), "iscrowd": 1},
        {"id": 20, "image_id": 2, "category_id": 18, "segmentation": L_POLYGONS, "iscrowd": 0},
        {"id": 30, "image_id": 3, "category_id": 18, "segmentation": RECT_POLYGON, "iscrowd": 0},
        {"id": 31, "image_id": 3, "category_id": 1, "segmentation": _box(5, 0), "iscrowd": 0},
        {"id": 40, "image_id": 4, "category_id": 1, "segmentation": _box(0, 0, 2, 2), "iscrowd": 0},
    ]
    categories = [
        {"id": 1, "name": "person"},
        {"id": 18, "name": "dog"},
        {"id": 5, "name": "airplane"},
        {"id": 28, "name": "umbrella"},
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture
def coco_files(tmp_path):
    """``coco/annotations/instances_val2017.json`` and ``coco/val2017/*.png`` (the usual COCO layout)."""
    dataset = _coco_dict()
    for entry in dataset["images"]:
        _write_image(tmp_path / "coco" / "val2017" / entry["file_name"], value=entry["id"])
    json_path = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    json_path.parent.mkdir(parents=True)
    json_path.write_text(json.dumps(dataset))
    return json_path, tmp_path / "coco" / "val2017"


def test_load_coco_polygons_rle_and_crowd(coco_files):
    json_path, image_dir = coco_files
    dogs = load_coco(json_path, image_dir, category="dog")
    assert isinstance(dogs, Collection) and dogs.category == "dog"
    assert dogs.names == ["000000000001", "000000000002", "000000000003"]
    assert [int(image[0, 0, 0]) for image in dogs.images] == [1, 2, 3]  # the right file for each entry
    first, second, third = dogs.gt_masks
    assert first.shape == (2, H, W) and first.dtype == bool  # the crowd region is not an instance
    np.testing.assert_array_equal(first[0], RECT)
    np.testing.assert_array_equal(first[1], RLE_MASK)
    np.testing.assert_array_equal(second, L_SHAPE[None])  # two polygons, one instance
    np.testing.assert_array_equal(third, RECT[None])  # the person in image 3 is not a dog

    with_crowd = load_coco(json_path, image_dir, category="dog", include_crowd=True)
    assert [len(m) for m in with_crowd.gt_masks] == [3, 1, 1]
    np.testing.assert_array_equal(with_crowd.gt_masks[0][2], CROWD_MASK)


def test_load_coco_protocol_split(coco_files):
    """The tune / report split (a hash of the file name): 000000000001.png and …3.png tune, …2.png reports."""
    json_path, image_dir = coco_files
    tune = load_coco(json_path, image_dir, category="dog", protocol_split="tune")
    assert tune.names == ["000000000001", "000000000003"]
    with pytest.raises(ValueError, match="1 image"):  # CollectionError  # the split is applied before the count
        load_coco(json_path, image_dir, category="dog", protocol_split="report")


def test_load_coco_category_by_name_or_id_and_filters(coco_files):
    json_path, image_dir = coco_files
    by_name = load_coco(json_path, image_dir, category="DOG")
    by_id = load_coco(json_path, image_dir, category=18)
    assert by_name.names == by_id.names and by_id.category == "dog"
    for a, b in zip(by_name.gt_masks, by_id.gt_masks):
        np.testing.assert_array_equal(a, b)
    assert load_coco(json_path, image_dir, category="dog", max_images=2).names == by_name.names[:2]
    single = load_coco(json_path, image_dir, category="dog", require_single_category=True)
    assert single.names == ["000000000001", "000000000002"]  # image 3 also shows a person
    with pytest.raises(ValueError, match="1 image"):  # CollectionError  # only image 1 has two dogs
        load_coco(json_path, image_dir, category="dog", min_instances=2)
    people = load_coco(json_path, image_dir, category="person")
    assert people.names == ["000000000003", "000000000004"] and [len(m) for m in people.gt_masks] == [1, 1]
    np.testing.assert_array_equal(people.gt_masks[1][0], np.pad(np.ones((2, 2), bool), ((0, H - 2), (0, W - 2))))
    guessed = load_coco(json_path, category="person")  # image folder found from the layout
    assert guessed.paths == people.paths


def test_load_coco_category_errors(coco_files):
    json_path, image_dir = coco_files
    with pytest.raises(CollectionError, match=r"airplane.*18: dog \(3 images\)"):  # exists, but no annotation
        load_coco(json_path, image_dir, category="airplane")
    with pytest.raises(CollectionError, match=r"'zebra' is not in.*1: person"):
        load_coco(json_path, image_dir, category="zebra")
    with pytest.raises(CollectionError, match="choose one with category="):  # None, but two categories are annotated
        load_coco(json_path, image_dir)
    only_dogs = _coco_dict()
    only_dogs["annotations"] = [a for a in only_dogs["annotations"] if a["category_id"] == 18]
    assert load_coco(only_dogs, image_dir).category == "dog"  # one annotated category: no need to name it
    with pytest.raises(ValueError, match="not a COCO instances file"):
        load_coco({"images": [], "annotations": []}, image_dir, category="dog")


def test_load_coco_missing_image_names_the_file(coco_files):
    json_path, image_dir = coco_files
    (image_dir / "000000000002.png").unlink()
    with pytest.raises(ImageLoadError, match=r"000000000002\.png.*image id 2"):
        load_coco(json_path, image_dir, category="dog")


def test_load_coco_image_size_must_match_annotations(coco_files):
    json_path, image_dir = coco_files
    _write_image(image_dir / "000000000002.png", height=H + 2, width=W)  # replaced by a taller file
    with pytest.raises(CollectionError, match=r"8×7 \(H×W\).*6×7 for image id 2"):
        load_coco(json_path, image_dir, category="dog")
    dataset = _coco_dict()
    dataset["annotations"][1]["segmentation"]["size"] = [H, W + 1]  # an RLE of the wrong size
    _write_image(image_dir / "000000000002.png")
    with pytest.raises(CollectionError, match="Annotation 11 of '000000000001.png' has an RLE mask of size 6×8"):
        load_coco(dataset, image_dir, category="dog")


def test_load_coco_reads_stored_pixels_when_only_they_match_the_annotations(coco_files):
    json_path, image_dir = coco_files
    stored = np.zeros((H, W, 3), np.uint8)
    stored[0, :, 0] = 255  # a red top row, as annotated
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to display": shown as W×H
    Image.fromarray(stored).save(image_dir / "000000000002.png", exif=exif)
    dogs = load_coco(json_path, image_dir, category="dog")
    np.testing.assert_array_equal(dogs.images[1], stored)  # not the rotated display
    np.testing.assert_array_equal(dogs.gt_masks[1][0], L_SHAPE)


def test_merge_coco_annotations(tmp_path):
    first, second = _coco_dict(), _coco_dict()
    second["images"] = [{**e, "id": e["id"] + 100} for e in second["images"]]
    second["annotations"] = [{**a, "id": a["id"] + 100, "image_id": a["image_id"] + 100} for a in second["annotations"]]
    paths = []
    for name, dataset in (("train", first), ("val", second)):
        for entry in dataset["images"]:
            _write_image(tmp_path / name / entry["file_name"], value=entry["id"])
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(dataset))
    merged = merge_coco_annotations(paths, [tmp_path / "train", tmp_path / "val"])
    dogs = load_coco(merged, category="dog")  # file names are full paths now
    assert len(dogs) == 6 and sorted(int(image[0, 0, 0]) for image in dogs.images) == [1, 2, 3, 101, 102, 103]
    with pytest.raises(ValueError, match="repeats image ids"):
        merge_coco_annotations([paths[0], paths[0]], [tmp_path / "train"] * 2)


# ------------------------------------------------------------------ the paper's collection rules


def _rules_dict():
    """A file built so that each rule of ``build_collections`` removes something.

    dog (VOC): images 1-3 with 2 dogs, image 4 with 1 dog, image 5 with 2 dogs + a person,
      image 6 with 2 dogs + a crowd of people (crowd ignored);
    person (VOC): images 11-12 with 3 people;
    umbrella (non-VOC): images 21-23 with 2 umbrellas; image 24 with 2 umbrellas + 1 crowd umbrella.
    """
    objects = {
        1: [18, 18],
        2: [18, 18],
        3: [18, 18],
        4: [18],
        5: [18, 18, 1],
        6: [18, 18, "crowd 1"],
        11: [1, 1, 1],
        12: [1, 1, 1],
        21: [28, 28],
        22: [28, 28],
        23: [28, 28],
        24: [28, 28, "crowd 28"],
    }
    images, annotations = [], []
    for image_id, categories in objects.items():
        images.append({"id": image_id, "file_name": f"{image_id:012d}.png", "height": H, "width": W})
        for k, category in enumerate(categories):
            crowd = isinstance(category, str)
            annotations.append(
                {
                    "id": 1000 * image_id + k,
                    "image_id": image_id,
                    "iscrowd": int(crowd),
                    "category_id": int(category.split()[1]) if crowd else category,
                    "segmentation": _compressed_rle(CROWD_MASK) if crowd else _box(k, k),
                }
            )
    categories = [
        {"id": 1, "name": "person"},
        {"id": 18, "name": "dog"},
        {"id": 28, "name": "umbrella"},
        {"id": 44, "name": "bottle"},
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def test_build_collections_applies_each_rule(capsys):
    built = build_collections(_rules_dict(), min_images=3, min_instances=2)
    # image 4 (one dog) and image 5 (dogs + person) are out; person has 2 < 3 images; crowds are ignored.
    assert dict(built) == {"dog": [1, 2, 3, 6], "umbrella": [21, 22, 23, 24]}
    assert built.stats.per_class == {"dog": (4, 8), "umbrella": (4, 8)}
    assert (built.stats.classes, built.stats.images, built.stats.instances) == (2, 8, 16)
    printed = capsys.readouterr().out
    assert "COCO-VOC: 1 classes / 4 images / 8 instances" in printed
    assert "COCO-NONVOC: 1 classes / 4 images / 8 instances" in printed
    assert "umbrella" in printed and "total" in printed

    assert dict(build_collections(_rules_dict(), min_images=3, min_instances=1, verbose=False))["dog"] == [
        1,
        2,
        3,
        4,
        6,
    ]
    kept = build_collections(_rules_dict(), min_images=2, min_instances=2, verbose=False)
    assert kept["person"] == [11, 12] and kept.stats.per_class["person"] == (2, 6)
    assert build_collections(_rules_dict(), min_images=5, verbose=False) == {}
    assert capsys.readouterr().out == ""  # verbose=False prints nothing


def test_build_collections_voc_split():
    voc = build_collections(_rules_dict(), min_images=2, split="voc", verbose=False)
    nonvoc = build_collections(_rules_dict(), min_images=2, split="nonvoc", verbose=False)
    assert set(voc) == {"dog", "person"} and set(nonvoc) == {"umbrella"}
    assert voc.stats.name == "COCO-VOC" and (voc.stats.classes, voc.stats.images, voc.stats.instances) == (2, 6, 14)
    assert voc.split_stats["nonvoc"].per_class == nonvoc.stats.per_class == {"umbrella": (4, 8)}
    with pytest.raises(ValueError, match="split must be one of"):
        build_collections(_rules_dict(), split="coco")


def test_coco_voc_categories_are_the_twenty_voc_classes():
    assert len(COCO_VOC_CATEGORIES) == 20 == len(VOC_CLASSES)
    assert {"airplane", "motorcycle", "dining table", "potted plant", "couch", "tv", "person"} <= COCO_VOC_CATEGORIES
    assert not {"umbrella", "giraffe", "aeroplane", "sofa"} & COCO_VOC_CATEGORIES


def test_built_collection_loads_lazily(tmp_path):
    dataset = _rules_dict()
    built = build_collections(dataset, image_dir=tmp_path, min_images=3, verbose=False)  # no image exists yet
    for entry in dataset["images"]:
        _write_image(tmp_path / entry["file_name"], value=entry["id"])
    dogs = built.load("dog")
    assert dogs.category == "dog" and [int(image[0, 0, 0]) for image in dogs.images] == [1, 2, 3, 6]
    assert [len(m) for m in dogs.gt_masks] == [2, 2, 2, 2]
    second_dog = np.zeros((H, W), bool)
    second_dog[1, 1] = True  # _box(1, 1): the pixel at row 1, column 1
    np.testing.assert_array_equal(dogs.gt_masks[3][1], second_dog)
    assert len(built.load("umbrella", max_images=2)) == 2
    with pytest.raises(CollectionError, match="built collections: dog, umbrella"):
        built.load("person")


# ------------------------------------------------------------------ PASCAL VOC 2012 and SBD

VOC_PALETTE = np.zeros((256, 3), np.uint8)
VOC_PALETTE[1:21] = np.random.default_rng(0).integers(0, 255, (20, 3))
VOC_PALETTE[255] = (224, 224, 192)
DOG, PERSON, CAT = voc_class_index("dog"), voc_class_index("person"), voc_class_index("cat")


def _write_palette_png(path, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(VOC_PALETTE.ravel().tolist())
    image.save(path)


def _voc_image(objects_spec, size=(8, 10)):
    """Object and class label maps ``(H, W) uint8`` from ``[(instance, class, rows, cols), ...]``, each object
    framed by a 1-pixel void (255) band; also the expected masks (the object pixels without the band)."""
    objects, classes = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
    expected = []
    for instance, category, rows, cols in objects_spec:
        band = (slice(rows.start - 1, rows.stop + 1), slice(cols.start - 1, cols.stop + 1))
        objects[band], classes[band] = 255, 255
        objects[rows, cols], classes[rows, cols] = instance, category
        mask = np.zeros(size, bool)
        mask[rows, cols] = True
        expected.append(mask)
    return objects, classes, expected


@pytest.fixture
def voc_root(tmp_path):
    """VOC2012 with three images: two dogs; a dog and a person; one cat."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    specs = {
        "2007_000001": [(1, DOG, slice(1, 4), slice(1, 4)), (2, DOG, slice(5, 7), slice(5, 9))],
        "2007_000002": [(1, DOG, slice(1, 3), slice(1, 3)), (2, PERSON, slice(4, 7), slice(6, 9))],
        "2007_000003": [(1, CAT, slice(2, 6), slice(2, 8))],
    }
    expected = {}
    for index, (image_id, spec) in enumerate(specs.items()):
        objects, classes, masks = _voc_image(spec)
        _write_palette_png(root / "SegmentationObject" / f"{image_id}.png", objects)
        _write_palette_png(root / "SegmentationClass" / f"{image_id}.png", classes)
        (root / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 10, 3), 40 * index, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        expected[image_id] = masks
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000002\n2007_000001\n")
    return root, expected


def test_voc_palette_png_with_void(voc_root):
    root, expected = voc_root
    assert Image.open(root / "SegmentationObject" / "2007_000001.png").mode == "P"
    dogs = load_voc_instances(root.parent, category="dog")  # VOCdevkit is accepted too
    assert dogs.category == "dog" and dogs.names == ["2007_000001", "2007_000002"]
    assert [len(m) for m in dogs.gt_masks] == [2, 1]
    np.testing.assert_array_equal(dogs.gt_masks[0], np.stack(expected["2007_000001"]))  # void band in no mask
    np.testing.assert_array_equal(dogs.gt_masks[1][0], expected["2007_000002"][0])
    band = np.asarray(Image.open(root / "SegmentationObject" / "2007_000001.png")) == 255
    assert band.sum() > 0 and not (dogs.gt_masks[0].any(axis=0) & band).any()


def test_voc_category_and_image_set_choices(voc_root):
    root, expected = voc_root
    assert load_voc_instances(root, category=12).names == load_voc_instances(root, category="DOG").names
    with pytest.raises(CollectionError, match=r"Only 1 .* and no other class.*cat \(1 images\)"):
        load_voc_instances(root, category="dog", require_single_category=True)
    with pytest.raises(CollectionError, match="Only 1"):
        load_voc_instances(root, category="dog", min_instances=2)
    everything = load_voc_instances(root, image_set_file="val")  # ImageSets/Segmentation/val.txt, in its order
    assert everything.names == ["2007_000002", "2007_000001"] and everything.category == "object"
    np.testing.assert_array_equal(everything.gt_masks[0], np.stack(expected["2007_000002"]))  # dog and person
    ids = load_voc_instances(root, image_set_file=["2007_000003", "2007_000001"], category=None)
    assert ids.names == ["2007_000003", "2007_000001"] and [len(m) for m in ids.gt_masks] == [1, 2]
    assert len(load_voc_instances(root, max_images=2)) == 2
    single_class = load_voc_instances(root, require_single_category=True)  # the dog + person image is left out
    assert single_class.names == ["2007_000001", "2007_000003"] and single_class.category == "object"
    with pytest.raises(ValueError, match="Unknown VOC class 'zebra'"):
        load_voc_instances(root, category="zebra")
    assert voc_class_index("airplane") == 1 and voc_class_index("tv") == 20  # COCO names map to VOC classes


def test_voc_rejects_rgb_label_maps(voc_root):
    root, _ = voc_root
    path = root / "SegmentationObject" / "2007_000001.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(CollectionError, match="palette"):
        load_voc_instances(root, category="dog")


def _write_sbd(root, image_id, segmentation, categories, value):
    (root / "inst").mkdir(parents=True, exist_ok=True)
    (root / "img").mkdir(exist_ok=True)
    gt = {
        "Segmentation": segmentation.astype(np.uint8),
        "Categories": np.asarray(categories, np.uint8).reshape(-1, 1),
        "Boundaries": np.empty((len(categories), 1), dtype=object),
    }  # a cell of sparse outlines, as in SBD
    for k in range(len(categories)):
        gt["Boundaries"][k, 0] = scipy.sparse.csc_matrix(segmentation == k + 1)
    scipy.io.savemat(root / "inst" / f"{image_id}.mat", {"GTinst": gt})
    Image.fromarray(np.full(segmentation.shape + (3,), value, np.uint8)).save(root / "img" / f"{image_id}.jpg")


def test_sbd_mat_instances(tmp_path):
    root = tmp_path / "benchmark_RELEASE" / "dataset"
    two = np.zeros((5, 6), int)
    two[0:2, 0:2], two[3:5, 2:6] = 1, 2  # instance 1 a person, instance 2 a dog
    one = np.zeros((5, 6), int)
    one[1:4, 1:5] = 1  # a single dog: Categories squeezes to a scalar when read
    _write_sbd(root, "2008_000002", two, [PERSON, DOG], 0)
    _write_sbd(root, "2008_000003", one, [DOG], 255)

    masks, classes = instances_from_sbd_mat(root / "inst" / "2008_000002.mat")
    np.testing.assert_array_equal(masks, np.stack([two == 1, two == 2]))
    assert classes.tolist() == [PERSON, DOG]

    dogs = load_voc_instances(root.parent, category="dog")  # benchmark_RELEASE is accepted too
    assert dogs.names == ["2008_000002", "2008_000003"] and dogs.category == "dog"
    np.testing.assert_array_equal(dogs.gt_masks[0], (two == 2)[None])
    np.testing.assert_array_equal(dogs.gt_masks[1], (one == 1)[None])
    assert dogs.images[1].shape == (5, 6, 3) and dogs.images[1].min() > 200
    (root / "train.txt").write_text("2008_000003\n2008_000002\n")
    assert load_voc_instances(root, image_set_file="train").names == ["2008_000003", "2008_000002"]
    (root / "img" / "2008_000003.jpg").unlink()
    with pytest.raises(ImageLoadError, match="2008_000003.jpg"):
        load_voc_instances(root, category="dog")


# ------------------------------------------------------------------ folders and downloads


def test_folder_of_images_is_load_collection(tmp_path):
    for i in range(3):
        _write_image(tmp_path / f"b{i}.png", value=10 * i)
    collection = load_collection(tmp_path)
    assert collection.names == ["b0", "b1", "b2"] and not collection.has_ground_truth


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_downloads_return_cached_folders_without_network(tmp_path, no_network):
    (tmp_path / "balloon" / "train").mkdir(parents=True)
    (tmp_path / "balloon" / "train" / "via_region_data.json").write_text("{}")
    assert download_balloon(folder=tmp_path) == tmp_path / "balloon"
    (tmp_path / "annotations").mkdir()
    for split in ("train", "val"):
        (tmp_path / "annotations" / f"instances_{split}2017.json").write_text("{}")
    assert download_coco_annotations(tmp_path) == tmp_path / "annotations"
    (tmp_path / "PennFudanPed" / "PNGImages").mkdir(parents=True)
    assert download_pennfudan(folder=tmp_path) == tmp_path / "PennFudanPed"


def test_download_failure_is_clear_and_leaves_no_partial_file(tmp_path, no_network):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{}")  # incomplete: train is missing
    with pytest.raises(DownloadError, match=r"Could not download http://images\.cocodataset\.org.*by hand"):
        download_coco_annotations(tmp_path)
    with pytest.raises(DownloadError, match="balloon_dataset.zip"):
        download_balloon(folder=tmp_path)
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob("*.zip"))
