# Two entry points, both from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench bench-quick clean

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

# The utility benchmark (docs/benchmarks.md): JSON in benchmarks/results/.
bench: $(STAMP)
	$(BIN)/python benchmarks/utility.py --markdown docs/benchmarks.md

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/utility.py --quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs
