"""benchmarks/memory.py: a smoke run on a tiny collection."""

from benchmark_scripts import load_benchmark


def test_memory_smoke_run_writes_a_table_with_its_command(tmp_path):
    memory = load_benchmark("memory")
    out = tmp_path / "memory.md"
    argv = ["--preset", "tiny", "--collection", "synthetic", "--images", "2"]
    memory.main([*argv, "--out", str(out)])
    text = out.read_text()
    assert "python benchmarks/memory.py " + " ".join([*argv, "--out", str(out)]) in text
    assert "projected for 500 images" in text
