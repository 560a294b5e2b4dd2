# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv and the system packages the project needs, then runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: demo test lint setup system clean

demo: setup
	$(BIN)/jc demo $(DEMO_DIR)

test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check jc_datalad scorers site_generator challenge_templates tests benchmarks
	$(BIN)/mypy

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
