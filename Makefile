# Two commands on a fresh clone: `make run` and `make test`.
# Both bootstrap the virtualenv themselves and are fast when it is up to date.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= agentvisor.toml.example
LINTED := agentvisor tests examples $(wildcard bench)

.PHONY: run test lint typecheck layers unit check bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "agentvisor needs Python 3.11+ (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

run: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/agentvisor run -c $(CONFIG)

test: $(VENV)/.installed
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit -q

check: $(VENV)/.installed
	$(BIN)/agentvisor check -c $(CONFIG)

bench: $(VENV)/.installed
	$(BIN)/python bench/supervisor_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
