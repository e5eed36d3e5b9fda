"""benchmarks/speed.py: a smoke run on a tiny collection."""

from benchmark_scripts import load_benchmark


def test_speed_smoke_run_writes_a_table_with_its_command(tmp_path):
    speed = load_benchmark("speed")
    out, raw = tmp_path / "speed.md", tmp_path / "speed.json"
    argv = ["--presets", "tiny", "--sizes", "2", "--collection", "synthetic", "--set", "epochs=1"]
    speed.main([*argv, "--out", str(out), "--json", str(raw)])
    assert "python benchmarks/speed.py " + " ".join(argv) in out.read_text()
    rewritten = tmp_path / "again.md"
    speed.main(["--from-json", str(raw), "--out", str(rewritten)])
    assert rewritten.read_text() == out.read_text()
