# One task file: `make lint`, `make test`, `make bench`. Run lint and test before every commit.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: lint test bench

lint:
	$(VENV)/bin/ruff check logpath grammars tests benchmarks
	$(VENV)/bin/ruff format --check logpath grammars tests benchmarks
	$(VENV)/bin/mypy --strict logpath grammars

test:
	$(VENV)/bin/pytest -q

bench:
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_flows.py
