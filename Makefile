# One task runner for people and CI. `make run` and `make test` are the two
# set-up commands in the README; both install what they need first.

VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PYTHON ?= python3
# The pinned generators (buf, protoc plugins) and tools come from the venv.
export PATH := $(BIN):$(PATH)

.DEFAULT_GOAL := help

.PHONY: help install run test check-contracts generate format lint typecheck unit bench clean

help:  ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the engine with its dev tools

run: install  ## install, then run the engine and its REST gateway on loopback
	$(BIN)/trading-engine dev

test: check-contracts lint typecheck unit  ## everything CI runs (.ci/run)

check-contracts: install  ## buf format/lint/breaking, stale gen/ and descriptor, Envoy config
	buf format --diff --exit-code
	buf lint
	$(BIN)/python tools/check_contracts.py

generate: install  ## regenerate gen/ and the Envoy descriptor set from proto/
	buf generate
	buf build --exclude-source-info -o envoy/trading_engine.binpb

format: install  ## format contracts and Python in place
	buf format -w
	ruff format server clients tests tools
	ruff check --fix server clients tests tools

lint: install  ## ruff
	ruff check server clients tests tools
	ruff format --check server clients tests tools

typecheck: install  ## mypy --strict
	mypy

unit: install  ## the test suite against real servers on loopback
	pytest

bench: install  ## benchmarks; print one JSON object per result
	$(BIN)/python -m bench

clean:  ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
