# Two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench clean serve

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Run the demo municipality on the embedded default (SQLite).
demo: $(STAMP)
	$(BIN)/glasplade demo $(DEMO_ARGS)

## Run the whole test suite (PostgreSQL, Kafka broker and browser tests included).
test: $(STAMP)
	$(BIN)/python tests/preflight.py
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Lint and the docstring convention (ruff; settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .

## Serve the API and the Danish dashboard on 127.0.0.1:8080 with the demo users.
serve: $(STAMP)
	$(BIN)/glasplade serve --demo-users

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) glasplade.db* .pytest_cache
