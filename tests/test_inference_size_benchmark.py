"""benchmarks/inference_size.py: its arguments are checked before any training starts."""

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


def test_sizes_off_the_feature_grid_are_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "table.md"
    with pytest.raises(SystemExit):
        load().main(["--sizes", "448", "600", "--out", str(out)])
    assert "multiples of 32" in capsys.readouterr().err
    assert not out.exists()


def test_the_rows_are_the_preset_and_the_saliency_loss_alone():
    module = load()
    rows = {name: module.builtin_rows(module.preset("lite"))[name] for name in module.ROWS}
    assert rows["full"].changes == {}
    assert rows["saliency"].changes == {"lambda_copeak": 0.0, "lambda_affinity": 0.0}
