# The two commands of the README:  `make demo` runs the main job,  `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/gigafactory demo

test: $(VENV)/.dev lint typecheck unit

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# mypy checks src and tests (pyproject's [tool.mypy] files), strictly; bench is not checked.
typecheck: $(VENV)/.dev
	$(BIN)/mypy

# pytest exits 5 when it collects nothing; that is a pass, not a failure.
unit: $(VENV)/.dev
	$(BIN)/pytest -n 2 || [ $$? -eq 5 ]

bench: $(VENV)/.dev
	$(BIN)/python bench/twin_scale.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
