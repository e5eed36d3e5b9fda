"""Load a script of ``benchmarks/`` as a module, for the tests of the benchmark scripts."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(script: str, module_name: str | None = None):
    """``benchmarks/<script>.py`` executed as the module ``module_name`` (default ``script``). The folder goes on
    ``sys.path`` (scripts import their siblings) and the module into ``sys.modules`` (dataclasses look their
    module up while it is being executed)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(module_name or script, BENCHMARKS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
