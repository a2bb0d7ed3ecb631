# One task runner for people and CI. `make run` and `make test` are the two
# set-up commands in the README; both install what they need first.

VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PYTHON ?= python3
# The pinned generators (buf, protoc plugins) and tools come from the venv.
export PATH := $(BIN):$(PATH)

.DEFAULT_GOAL := help

.PHONY: help install system-tools build run test check-contracts generate format lint typecheck unit bench clean

help:  ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

# The hot path compiled in place (setup.py): rebuilt when one of its sources changes.
COMPILED_SOURCES := $(shell grep -o '"server/[^"]*\.\(py\|c\)"' setup.py | tr -d '"')

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.compiled

$(VENV)/.compiled: $(COMPILED_SOURCES) | $(VENV)/.installed
	$(BIN)/python setup.py --quiet build_ext --inplace
	@# setuptools keeps the build time of unchanged extensions; stamp them as current.
	find server -name '*.so' -exec touch {} +
	touch $@

install: $(VENV)/.installed system-tools  ## create .venv and install the engine with its dev tools

# What the tests run besides Python: Prometheus and promtool (deploy/'s rules and a real
# scrape) and Chromium (the backtest report rendered in a browser), from Debian's packages,
# not Python ones. Installed when missing (as root, as CI runs); otherwise says how.
SYSTEM_PACKAGES := prometheus chromium
system-tools:  ## install Prometheus, promtool and Chromium from Debian's packages when missing
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
	  && command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's packages: $(SYSTEM_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "the tests need Debian's packages: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; \
	    exit 1; \
	  fi; }

build: $(VENV)/.compiled  ## recompile the hot path (mypyc and the C codec) after editing it

run: build  ## install, then run the whole stack on loopback with a demo feed
	$(BIN)/trading-engine dev --demo

test: check-contracts lint typecheck unit  ## everything CI runs (.ci/run)

check-contracts: install  ## buf format/lint/breaking, stale gen/, descriptor and OpenAPI document, Envoy config
	buf format --diff --exit-code
	buf lint
	$(BIN)/python -m tools.check_contracts

generate: install  ## regenerate gen/, the Envoy descriptor set and the OpenAPI document from proto/
	buf generate
	buf build --exclude-source-info -o envoy/trading_engine.binpb
	$(BIN)/python tools/openapi_document.py
	$(BIN)/python tools/strategy_reference.py
	$(BIN)/python tools/settings_reference.py
	$(BIN)/python tools/instrument_reference.py

format: install  ## format contracts and Python in place
	buf format -w
	ruff format server clients tests tools bench
	ruff check --fix server clients tests tools bench

lint: install  ## ruff
	ruff check server clients tests tools bench
	ruff format --check server clients tests tools bench

typecheck: install  ## mypy --strict
	mypy

unit: build system-tools  ## the test suite against real servers on loopback
	pytest

bench: build  ## benchmarks; print one JSON object per result
	$(BIN)/python -m bench

clean:  ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build
	find server -name '*.so' -delete
	rm -f *__mypyc*.so
