"""benchmarks/inference_size.py: a smoke run, and its arguments are checked before any training starts."""

import pytest
from benchmark_scripts import load_benchmark


def load():
    return load_benchmark("inference_size")


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
