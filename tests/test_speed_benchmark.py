"""benchmarks/speed.py: a smoke run on a tiny collection."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_speed_smoke_run_writes_a_table_with_its_command(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("speed", BENCHMARKS / "speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    out, raw = tmp_path / "speed.md", tmp_path / "speed.json"
    argv = ["--presets", "tiny", "--sizes", "2", "--collection", "synthetic", "--set", "epochs=1"]
    speed.main([*argv, "--out", str(out), "--json", str(raw)])
    assert "python benchmarks/speed.py " + " ".join(argv) in out.read_text()
    rewritten = tmp_path / "again.md"
    speed.main(["--from-json", str(raw), "--out", str(rewritten)])
    assert rewritten.read_text() == out.read_text()
