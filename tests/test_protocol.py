"""The fixed tune / report splits: by file name, disjoint, complete, stable, and through every loader."""

import json

import numpy as np
import pytest
from PIL import Image

from cosegkit.datasets import data_root, load_balloon, load_pennfudan, load_via, protocol_indices, protocol_split_of

NAMES = [
    "a.jpg",
    "b.jpg",
    "c.png",
    "d.png",
    "e.png",
    "000000000001.png",
    "000000000002.png",
    "34020010494_e5cb88e1c4_k.jpg",
]
# the first byte of SHA-256 of each name, even → tune, odd → report; written down once, must never change
EXPECTED = ["tune", "tune", "tune", "report", "report", "tune", "report", "tune"]


def test_hash_rule_is_fixed():
    assert [protocol_split_of(n) for n in NAMES] == EXPECTED
    assert protocol_split_of("some/folder/d.png") == "report"  # folders do not count, the extension does


def test_penn_fudan_splits_by_campus():
    assert protocol_split_of("FudanPed00001.png", "prefix") == "tune"
    assert protocol_split_of("PennPed00096.png", "prefix") == "report"
    with pytest.raises(ValueError, match="not a Penn-Fudan image"):
        protocol_split_of("a.png", "prefix")
    with pytest.raises(ValueError, match="split rule"):
        protocol_split_of("a.png", "random")


def test_splits_are_disjoint_complete_and_independent_of_the_other_images():
    tune, report = protocol_indices(NAMES, "tune"), protocol_indices(NAMES, "report")
    assert not set(tune) & set(report) and sorted(tune + report) == list(range(len(NAMES)))
    assert protocol_indices(NAMES, None) == protocol_indices(NAMES, "all") == list(range(len(NAMES)))
    for drop in range(len(NAMES)):  # removing any image moves no other
        rest = NAMES[:drop] + NAMES[drop + 1 :]
        assert [rest[i] for i in protocol_indices(rest, "tune")] == [n for n in rest if n in [NAMES[i] for i in tune]]
    with pytest.raises(ValueError, match="protocol_split must be one of"):
        protocol_indices(NAMES, "test")


def test_via_loader_splits_before_max_images(tmp_path):
    names = ["a.jpg", "b.jpg", "c.png", "d.png", "e.png"]
    entries = {}
    for name in names:
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / name)
        entries[name] = {"filename": name, "regions": []}
    (tmp_path / "via.json").write_text(json.dumps(entries))
    tune = load_via(tmp_path / "via.json", protocol_split="tune")
    report = load_via(tmp_path / "via.json", protocol_split="report")
    assert tune.names == ["a", "b", "c"] and report.names == ["d", "e"]
    assert load_via(tmp_path / "via.json").names == ["a", "b", "c", "d", "e"]
    assert load_via(tmp_path / "via.json", protocol_split="tune", max_images=2).names == ["a", "b"]


def _real(name):
    try:
        return data_root(name)
    except FileNotFoundError:
        pytest.skip(f"{name} data set not found (set COSEGKIT_DATA)")


def test_penn_fudan_tunes_on_fudan_and_reports_on_penn():
    root = _real("PennFudanPed")
    files = sorted(p.name for p in (root / "PNGImages").glob("*.png"))
    tune, report = protocol_indices(files, "tune", "prefix"), protocol_indices(files, "report", "prefix")
    assert (len(tune), len(report)) == (74, 96) and sorted(tune + report) == list(range(len(files)))
    assert load_pennfudan(max_images=2, protocol_split="report").names == ["PennPed00001", "PennPed00002"]
    assert load_pennfudan(max_images=2, protocol_split="tune").names == ["FudanPed00001", "FudanPed00002"]


def test_balloon_halves():
    root = _real("balloon")
    entries = json.loads((root / "train" / "via_region_data.json").read_text())
    files = sorted(e["filename"] for e in entries.values())
    tune, report = protocol_indices(files, "tune"), protocol_indices(files, "report")
    assert (len(tune), len(report)) == (33, 28)
    first = load_balloon(max_images=2, protocol_split="report")
    assert [p.name for p in first.paths] == [files[i] for i in report[:2]]
