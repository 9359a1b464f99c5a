# Everything a fresh machine needs is installed from here: `make test` and `make demo` create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck contracts bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check endpointkit tests benchmarks examples tools
	$(BIN)/ruff format --check endpointkit tests benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python tools/check_sdk_loading.py

test: lint typecheck contracts
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

demo: $(STAMP)
	$(BIN)/python examples/quickstart/demo.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
