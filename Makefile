# Two entry points, both from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench bench-quick bench-full clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# CPU wheel of torch first, so no range below pulls a CUDA build.
	$(BIN)/pip install "torch==2.13.0"
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/fedcare simulate --out runs/demo --overwrite

test: $(STAMP)
	sh deploy/system-deps.sh
	$(BIN)/python -m pytest -q --durations=25

# Every benchmark (benchmarks/run_all.py): JSON in benchmarks/results/, then the
# tables of docs/benchmarks.md and the README regenerated. bench-quick: CI's
# smoke size, into runs/bench-quick/; bench-full: every task, 50 hospitals, scale.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

bench-full: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --full

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs
