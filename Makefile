# One command each on a fresh machine with Python 3.11+: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs (make demo, serve, worker), then the test and development tools on top.
RUNTIME := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install test lint format demo serve worker migrate schema bench clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## test: lint, then the whole suite on two workers against real PostgreSQL and Redis
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## demo: migrate, seed the demo tenant and serve GraphiQL with the worker in-process
demo: $(RUNTIME)
	$(BIN)/rollcall migrate
	$(BIN)/rollcall seed --demo
	$(BIN)/rollcall serve --with-worker --host $(HOST) --port $(PORT)

serve: $(RUNTIME)
	$(BIN)/rollcall serve --host $(HOST) --port $(PORT)

worker: $(RUNTIME)
	$(BIN)/rollcall worker

migrate: $(RUNTIME)
	$(BIN)/rollcall migrate

## schema: regenerate schema.graphql from the code
schema: $(RUNTIME)
	$(BIN)/rollcall export-schema > schema.graphql

bench: $(STAMP)
	$(BIN)/python -m benchmarks.foundation
	$(BIN)/python -m benchmarks.jobs
	$(BIN)/python -m benchmarks.cache
	$(BIN)/python -m benchmarks.live
	$(BIN)/python -m benchmarks.uploads
	$(BIN)/python -m benchmarks.exports
	$(BIN)/python -m benchmarks.governance
	$(BIN)/python -m benchmarks.audit
	$(BIN)/python -m benchmarks.observability
	$(BIN)/python -m benchmarks.resilience
	$(BIN)/python -m benchmarks.load --seconds 45

clean:
	rm -rf $(VENV) .rollcall
