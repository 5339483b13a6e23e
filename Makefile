# Two commands on a fresh machine with Python 3.11 and make: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

# Bytecode caching makes every ZenML import several seconds faster.
unexport PYTHONDONTWRITEBYTECODE
export ZENML_ANALYTICS_OPT_IN := false
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install setup demo test test-fast lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --inexact --extra dev --python $(BIN)/python
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the locked dependencies

setup: install ## Register and activate the local ZenML stack (idempotent)
	$(BIN)/mlops setup

demo: setup ## Set everything up and run the main job
	$(BIN)/mlops train --env local

test: install ## Run every test, including the slow end-to-end ones
	$(BIN)/pytest -n 2 --dist loadgroup

test-fast: install ## Unit and CLI tests only (skips slow end-to-end runs)
	$(BIN)/pytest -m "not slow" -n 2 --dist loadgroup

lint: install ## Static checks
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

bench: setup ## Benchmarks (wall time, throughput); not part of the tests
	$(BIN)/python -m benchmarks.run

clean: ## Remove local state (ZenML store, MLflow runs, audit trail, caches)
	rm -rf .mlops test-output bench-output .pytest_cache
