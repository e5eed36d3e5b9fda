"""benchmarks/inference_size.py: a smoke run, and its arguments are checked before any training starts."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("inference_size", BENCHMARKS / "inference_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_size_smoke_run_writes_a_table_with_its_command(tmp_path):
    out = tmp_path / "table.md"
    argv = ["--collections", "synthetic", "--rows", "full", "--sizes", "256", "--preset", "tiny", "--epochs", "1"]
    load().main([*argv, "--max-images", "3", "--out", str(out)])
    assert "python benchmarks/inference_size.py " + " ".join(argv) in out.read_text()


def test_sizes_off_the_feature_grid_are_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "table.md"
    with pytest.raises(SystemExit):
        load().main(["--sizes", "448", "600", "--out", str(out)])
    assert "multiples of 32" in capsys.readouterr().err
    assert not out.exists()
