# Two commands for a newcomer: `make serve` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck unit bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/gateway serve --config configs/gateway.toml

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gateway
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q -x --durations=10

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
