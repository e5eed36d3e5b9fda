# The two commands a newcomer needs:   make demo   and   make test
# Both create .venv (if missing) and install cosegkit with everything it needs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export COSEGKIT_DATA ?= $(abspath ../shared/data)

.PHONY: demo test lab setup clean notebooks-sync

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[dev,notebooks]"
	$(BIN)/python -m cosegkit weights
	@touch $(STAMP)

## Segment a real collection and write figures + COCO json to outputs/demo/
demo: $(STAMP)
	$(BIN)/python -m cosegkit demo --out outputs/demo

## Lint and format checks (ruff), then the whole test suite, notebooks included (fast mode). One
## BLAS/OpenMP thread: on small 2-core machines torch's default of 2 threads is many times slower here.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	COSEGKIT_FAST=1 MPLBACKEND=Agg OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests --nbval-lax --nbval-current-env notebooks/

## Open the teaching notebooks in JupyterLab
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

## Regenerate each notebook (.ipynb, no outputs) from its reviewed .py source
notebooks-sync: $(STAMP)
	$(BIN)/jupytext --update --to ipynb notebooks/[0-9]*.py

clean:
	rm -rf outputs .pytest_cache
