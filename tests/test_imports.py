"""Dependencies point one way: a module never imports (even indirectly) a module above it.

Each check runs in a fresh interpreter, so what other tests imported does not count.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# module → modules that importing it must not load. ``cosegkit.ranking`` (numpy and ``masks`` only) comes with
# ``import cosegkit``: the configuration nests its ``RankingOptions``.
NOT_LOADED_BY = {
    "cosegkit.masks": ["cosegkit.evaluate", "cosegkit.proposals", "cosegkit.baselines", "cosegkit.pipeline"],
    "cosegkit.evaluate": ["cosegkit.proposals", "cosegkit.pipeline", "cosegkit.train", "cosegkit.model"],
    "cosegkit.ranking": ["cosegkit.evaluate", "cosegkit.proposals", "cosegkit.pipeline", "cosegkit.model"],
    "cosegkit.losses": ["cosegkit.model", "cosegkit.train", "cosegkit.pipeline"],
    "cosegkit.ddt": ["cosegkit.baselines", "cosegkit.proposals", "cosegkit.train"],
    "cosegkit.train": ["cosegkit.baselines", "cosegkit.proposals", "cosegkit.pipeline", "cosegkit.evaluate"],
}


@pytest.mark.parametrize("module", sorted(NOT_LOADED_BY))
def test_a_module_does_not_import_the_modules_above_it(module):
    forbidden = NOT_LOADED_BY[module]
    code = f"import sys, {module}; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"import {module} loads {done.stdout.strip()}"


def test_import_cosegkit_loads_only_the_config_and_its_options():
    code = "import sys, cosegkit; print(' '.join(sorted(m for m in sys.modules if m.startswith('cosegkit'))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [
        "cosegkit",
        "cosegkit.choices",
        "cosegkit.config",
        "cosegkit.masks",
        "cosegkit.ranking",
    ]
