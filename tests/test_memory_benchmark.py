"""benchmarks/memory.py: a smoke run on a tiny collection."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_memory_smoke_run_writes_a_table_with_its_command(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("memory", BENCHMARKS / "memory.py")
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)
    out = tmp_path / "memory.md"
    argv = ["--preset", "tiny", "--collection", "synthetic", "--images", "2"]
    memory.main([*argv, "--out", str(out)])
    text = out.read_text()
    assert "python benchmarks/memory.py " + " ".join([*argv, "--out", str(out)]) in text
    assert "projected for 500 images" in text
