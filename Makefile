# Two commands a newcomer needs (see README):  make demo   and   make test
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; override (e.g. TORCH_SPEC=torch) on a machine with CUDA.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.lcam-installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

.PHONY: install demo test lint bench
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lcam demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy src/lcam
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy src/lcam

bench: $(STAMP)
	$(BIN)/python benchmarks/step_overhead.py
