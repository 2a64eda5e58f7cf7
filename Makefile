# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EVENTS ?= 10000
SEED ?= 1

.PHONY: demo test test-fast bench chaos install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Run the reference pipeline on the embedded default (in-process broker, SQLite metadata and bodies).
demo: $(BIN)/.installed
	$(BIN)/eventpipe demo --events $(EVENTS) --seed $(SEED)

## The whole test suite, against the machine's RabbitMQ, Postgres and Redis, plus servers the
## tests start themselves (extra RabbitMQ nodes, SeaweedFS, a Redis Cluster).
test: $(BIN)/.installed
	$(BIN)/pytest -q -p no:cacheprovider

## Tests that need no server (markers come from the fixtures a test uses, see tests/conftest.py).
test-fast: $(BIN)/.installed
	$(BIN)/pytest -q -p no:cacheprovider -m "not services"

## Benchmarks side by side with raw pika, plain Dramatiq and Celery.
bench: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m benchmarks all

## Fault injection under HTTP traffic (a few minutes; not part of `make test`): starts its own
## Postgres and three RabbitMQ nodes on loopback, prints one table, writes docs/reliability.md.
chaos: $(BIN)/.installed
	$(BIN)/python -m chaos

clean:
	rm -rf .eventpipe $(VENV) *.egg-info
