# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EVENTS ?= 10000
SEED ?= 1

.PHONY: demo web test test-fast bench chaos install browser clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed browser

## The web console's browser tests drive Debian's chromium through chromium-driver (nothing is
## downloaded at test time). Installed once with apt as root; elsewhere those tests skip, saying so.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver for the browser tests (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  || echo "could not install chromium/chromium-driver: the browser tests (tests/web) will be skipped"; \
	else echo "chromium is missing and cannot be installed here (needs root and apt-get): the browser tests (tests/web) will be skipped"; fi

## Run the reference pipeline on the embedded default (in-process broker, SQLite metadata and bodies).
demo: $(BIN)/.installed
	$(BIN)/eventpipe demo --events $(EVENTS) --seed $(SEED)

## The web console over the same data (`eventpipe users add NAME --role admin` prints a password first).
web: $(BIN)/.installed
	$(BIN)/eventpipe web

## The whole test suite, against the machine's RabbitMQ, Postgres and Redis, plus servers the
## tests start themselves (extra RabbitMQ nodes, SeaweedFS, a Redis Cluster).
test: $(BIN)/.installed browser
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
