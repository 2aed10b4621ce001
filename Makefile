# Two commands a newcomer needs (see README):  make demo   and   make test
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; override (e.g. TORCH_SPEC=torch) on a machine with CUDA.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.lcam-installed
JAX_STAMP := $(VENV)/.lcam-jax-installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# lcam-jax (lcam-jax/, the optax port: jax and optax, never torch), installed next to
# lcam so that its parity tests can compare the two.
$(JAX_STAMP): $(STAMP) lcam-jax/pyproject.toml
	$(BIN)/python -m pip install -q -e "./lcam-jax[test]"
	touch $(JAX_STAMP)

.PHONY: install demo test lint docs wheels-check bench bench-jax
install: $(STAMP) $(JAX_STAMP)

demo: $(STAMP)
	$(BIN)/lcam demo

test: $(STAMP) $(JAX_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts lcam-jax
	$(BIN)/mypy src/lcam lcam-jax/src/lcam_jax
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q lcam-jax/tests
	$(MAKE) --no-print-directory docs
	$(MAKE) --no-print-directory wheels-check

lint: $(STAMP) $(JAX_STAMP)
	$(BIN)/ruff check src tests benchmarks scripts lcam-jax
	$(BIN)/mypy src/lcam lcam-jax/src/lcam_jax

# The documentation site (mkdocs.yml): strict, so a broken link or reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Build both wheels, install them into fresh virtual environments (not editable) and run
# them from outside the checkout (scripts/check_wheels.py says what it runs).
wheels-check: $(STAMP)
	$(BIN)/python scripts/check_wheels.py --torch "$(TORCH_SPEC)"

bench: $(STAMP)
	$(BIN)/python benchmarks/step_overhead.py

bench-jax: $(JAX_STAMP)
	$(BIN)/python lcam-jax/benchmarks/jax_update_overhead.py

# The tested support matrix (heavy: multi-GB torch builds; not part of `make test`): the
# optimizer's tests in a fresh venv per Python x torch cell (scripts/compat_matrix.py);
# writes docs/compat/matrix.json and the table in docs/COMPAT.md.
.PHONY: compat
compat:
	$(PYTHON) scripts/compat_matrix.py
