# Liaison — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_TOOLS := .tools/node

.PHONY: help install run test lint typecheck pytest schemas bench bench-ledger bench-signing bench-sweep bench-relay bench-cluster bench-memory bench-smoke broker redis postgres chromium node cluster node-tools fuzz partner-sdk clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# setup.py and the C source too: an editable install does not rebuild the extension on import.
$(STAMP): pyproject.toml setup.py services/hub/_geo.c services/hub/_buffers.c
	@command -v $(PYTHON) >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else echo "python3-venv is missing: run 'sudo apt-get install python3-venv'"; exit 1; fi; }
	@# The hub's coordinates check and body buffers are C (services/hub/_geo.c, _buffers.c): gcc and Python's headers.
	@command -v gcc >/dev/null && $(PYTHON) -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq build-essential python3-dev; \
	  else echo "gcc or Python's headers are missing: run 'sudo apt-get install build-essential python3-dev'"; exit 1; fi; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install Liaison with its dev tools

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@

$(VENV)/.fuzz-installed: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,fuzz]'
	@touch $@

$(NODE_TOOLS)/.installed: deploy/node-tools/package.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq nodejs npm; \
	  else echo "npm is missing: run 'sudo apt-get install nodejs npm'"; exit 1; fi; }
	mkdir -p $(NODE_TOOLS)
	cp deploy/node-tools/package.json $(NODE_TOOLS)/package.json
	cd $(NODE_TOOLS) && npm install --no-audit --no-fund --loglevel=error
	@touch $@

node-tools: $(NODE_TOOLS)/.installed ## install the AsyncAPI parser, Ajv and the partner-example client (npm)

broker: ## make sure a RabbitMQ is reachable, with the plugins Liaison needs
	@bash deploy/broker.sh

redis: ## make sure a Redis is reachable (the hub's shared delivery memory and its tests)
	@bash deploy/redis.sh

node: install broker ## run one extra RabbitMQ node beside the broker (Ctrl-C stops and removes it)
	$(BIN)/python -m liaison.nodes

cluster: install broker ## run a three-node RabbitMQ cluster beside the broker (Ctrl-C stops and removes it)
	$(BIN)/python -m liaison.nodes --cluster 3

postgres: ## make sure a PostgreSQL is reachable for the ledger (LIAISON_DATABASE_URL or local)
	@bash deploy/postgres.sh

chromium: ## Debian's Chromium, which the console's browser tests drive (never a downloaded one)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium'"; exit 1; fi; }

lint: install ## ruff
	$(BIN)/ruff check services schemas tests bench liaison/__init__.py docs/examples/python
	$(BIN)/ruff format --check services schemas tests bench liaison/__init__.py docs/examples/python

typecheck: install ## mypy --strict on services/ and schemas/
	$(BIN)/mypy

# The broker-restart test drops every connection on the node, so it runs after the rest, alone.
pytest: install $(VENV)/.bench-installed $(VENV)/.fuzz-installed node-tools broker redis postgres chromium
	$(BIN)/pytest -m "not broker_restart" $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ]; then $(BIN)/pytest -m broker_restart; fi

test: install node-tools broker redis lint typecheck pytest ## lint, type checks and the whole test suite

# A wheel straight from the folder (not via an sdist, which would carry its links, not the code).
partner-sdk: install ## build the partner SDK wheel (liaison.sdk + liaison.schemas only) into dist/
	rm -rf deploy/partner-sdk/build
	$(BIN)/python -m pip wheel -q --no-deps -w dist deploy/partner-sdk
	@ls dist/liaison_sdk-*.whl

schemas: install ## regenerate the JSON Schemas, the AsyncAPI document and the examples
	$(BIN)/python -m liaison.schemas.generate

run: install broker postgres ## bring the system up and play the demo scenario (Ctrl-C stops it)
	$(BIN)/liaison demo

bench: install $(VENV)/.bench-installed broker ## throughput and latency: shovel vs plain aio-pika vs FastStream vs the hub, then the hub signed vs unsigned (under 10 minutes)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.hub_signing --repeats 2 --no-openssl

bench-signing: install $(VENV)/.bench-installed broker ## the hub with every message signed and verified vs unsigned (and the old OpenSSL verify), round by round; µs per sign and verify
	$(BIN)/python -m bench.hub_signing

bench-ledger: install $(VENV)/.bench-installed broker postgres ## (about 40 minutes) the ledger: keeping up with the hub at full rate, search over 1,000,000 messages
	$(BIN)/python -m bench.ledger

bench-sweep: install $(VENV)/.bench-installed broker ## cost per message by recipients, body size and kind: hub and shovel, fitted model (bench/results/sweep.json)
	$(BIN)/python -m bench.sweep

bench-relay: install broker ## a field site's 10,000-message backlog over an emulated 256 kbit/s, 600 ms link (root: extra nodes)
	$(BIN)/python -m bench.relay

bench-cluster: install $(VENV)/.bench-installed ## the hub round on one extra node and on a three-node cluster, alternating (root: extra nodes; bench/results/cluster.json)
	$(BIN)/python -m bench.cluster

BENCH_REDIS_URL ?= redis://127.0.0.1:6379/0
bench-memory: install $(VENV)/.bench-installed broker redis ## the hub with its own memory and with the shared Redis one (BENCH_REDIS_URL), round by round
	$(BIN)/python -m bench.hub_memory --redis $(BENCH_REDIS_URL)

FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.fuzz-installed ## coverage-guided fuzzing (atheris) of the hub's decision for FUZZ_SECONDS (600)
	mkdir -p var/fuzz
	$(BIN)/python tests/schemas/fuzz_decide.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=var/fuzz/ -print_final_stats=1 var/fuzz/corpus

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
