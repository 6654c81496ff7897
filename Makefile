# The two commands of the README:  `make demo` runs the main job,  `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit bench clean native pure

# The engine compiled with mypyc from its own source (src/gigafactory/_native.py): built once, rebuilt when one of
# its sources changes; used only while it matches them. Where it cannot be built, the engine runs as pure Python.
NATIVE_SOURCES := $(shell $(PYTHON) scripts/build_native.py --sources 2>/dev/null)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.runtime

$(VENV)/.native: $(NATIVE_SOURCES) scripts/build_native.py src/gigafactory/_native.py | $(VENV)/.runtime
	@$(MAKE) --no-print-directory native

# Always builds (after `make pure`, or once a C compiler is installed); prints its last word, the rest is in the log.
native: | $(VENV)/.runtime
	@echo "compiling the engine with mypyc (about a minute; make pure removes it)"
	@$(PIP) install 'mypy>=1.10' 'setuptools>=65'
	@$(BIN)/python scripts/build_native.py > $(VENV)/native.log 2>&1 \
		&& tail -1 $(VENV)/native.log \
		|| { grep -h "could not compile" $(VENV)/native.log || tail -3 $(VENV)/native.log; true; }
	@touch $(VENV)/.native

pure:
	$(BIN)/python scripts/build_native.py --clean
	@touch $(VENV)/.native

demo: $(VENV)/.runtime $(VENV)/.native
	$(BIN)/gigafactory demo

test: $(VENV)/.dev $(VENV)/.native lint typecheck unit

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# mypy checks src and tests (pyproject's [tool.mypy] files), strictly; bench is not checked.
typecheck: $(VENV)/.dev
	$(BIN)/mypy

# pytest exits 5 when it collects nothing; that is a pass, not a failure.
unit: $(VENV)/.dev $(VENV)/.native
	$(BIN)/pytest -n 2 || [ $$? -eq 5 ]

bench: $(VENV)/.dev
	$(BIN)/python bench/twin_scale.py

clean:
	-$(PYTHON) scripts/build_native.py --clean
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
