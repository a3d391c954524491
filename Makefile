# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: run test test-fast lint typecheck pytest pytest-fast bench chaos screenshots clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("videogate needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	bash .ci/install-local-extra $(BIN)/python
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/videogate serve

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# The unit tier: everything but the slow end-to-end tests and the PostgreSQL runs, in
# parallel processes (pytest-xdist; a test file stays in one process, so a module's shared
# fakes start once). Three processes on two cores: many tests wait on sockets and
# subprocesses, and a third keeps both cores busy (65 s -> 54 s here). `make test` runs
# every tier, in one process.
test-fast: pytest-fast

pytest-fast: $(STAMP)
	$(BIN)/pytest -q -m 'not slow and not postgres' -n 3 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/render_bench.py
	$(BIN)/python bench/api_bench.py

# The long chaos run (docs/reliability.md): a few hundred tasks per backend, every fault.
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py

# Desktop and phone screenshots of every console page, into screenshots/ (not committed).
screenshots: $(STAMP)
	$(BIN)/python docs/console_screenshots.py screenshots

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
