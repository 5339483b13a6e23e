# Two commands on a fresh machine with Python 3.11 and make: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

# Bytecode caching makes every ZenML import several seconds faster: `uv sync --compile-bytecode`
# compiles the installed packages once at install, so a first `mlops` command (and a shell that
# sets PYTHONDONTWRITEBYTECODE) does not compile ~2,500 modules from source.
unexport PYTHONDONTWRITEBYTECODE
export ZENML_ANALYTICS_OPT_IN := false
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install setup demo test test-fast lint validate-stacks stack-requirements bench screenshots clean dashboard dashboard-stop

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --inexact --extra dev --compile-bytecode --python $(BIN)/python
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the locked dependencies

setup: install ## Register and activate the local ZenML stack (idempotent)
	$(BIN)/mlops setup

demo: setup ## Set everything up and run the whole lifecycle, narrated
	$(BIN)/mlops demo

test: install ## Run every test, including the slow end-to-end ones
	$(BIN)/pytest -n 2 --dist loadgroup

test-fast: install ## Every test not marked slow (unit, CLI and quick integration tests)
	$(BIN)/pytest -m "not slow" -n 2 --dist loadgroup

lint: install ## Static checks: ruff, actionlint, zizmor, hadolint
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/actionlint
	$(BIN)/zizmor --offline .github/workflows
	$(BIN)/hadolint Dockerfile.base

validate-stacks: install ## Register the staging/production stack files in a throwaway ZenML store
	scripts/validate_stacks.sh

# `make stack-requirements STACK_ENV=production`: the client side of a remote stack (CI runners).
STACK_ENV ?= staging

stack-requirements: install ## Add STACK_ENV's ZenML integrations to .venv (locked versions kept)
	$(BIN)/mlops stack requirements --env $(STACK_ENV) --output $(VENV)/stack-requirements.txt
	$(BIN)/uv export --quiet --frozen --all-extras --no-emit-project --no-hashes --no-header \
		--format requirements-txt --output-file $(VENV)/locked-constraints.txt
	$(BIN)/uv pip install --python $(BIN)/python -r $(VENV)/stack-requirements.txt \
		-c $(VENV)/locked-constraints.txt

bench: setup ## Benchmarks (wall time, throughput); not part of the tests
	$(BIN)/python -m benchmarks.run

# The pictures the guides show, taken by the browser tests into test-output/.
SCREENSHOTS := model_report.png versions.png

screenshots: install ## Retake the guides' screenshots (docs/images/) with the browser tests
	$(BIN)/pytest -n 0 tests/integration/test_promotion.py -k "story or screenshots"
	mkdir -p docs/images
	cd test-output && cp $(SCREENSHOTS) ../docs/images/
dashboard: setup ## Start the ZenML dashboard (:8237) and the MLflow UI (:5000) on 127.0.0.1
	$(BIN)/mlops dashboard start

dashboard-stop: ## Stop the dashboards started by `make dashboard` (same MLOPS_STATE_DIR); checks the ports closed
	$(BIN)/mlops dashboard stop

# What `make clean` removes besides the state directory (tests point it elsewhere).
OUTPUTS ?= test-output bench-output .pytest_cache

clean: ## Remove local state (ZenML store, MLflow runs, audit trail, caches) of MLOPS_STATE_DIR (default .mlops)
	@state="$${MLOPS_STATE_DIR:-.mlops}"; \
	case "$$(cd "$$state" 2>/dev/null && pwd)" in /|"$$HOME"|"$(CURDIR)") \
		echo "Refusing to remove MLOPS_STATE_DIR=$$state: it is not a state directory." >&2; exit 1;; esac; \
	if [ -f "$$state/dashboard-ports.json" ] || [ -f "$$state/mlflow-ui.pid" ]; then \
		$(BIN)/mlops dashboard stop || exit 1; \
	fi; \
	if [ -f "$$state/server/server.json" ]; then $(BIN)/mlops server stop || exit 1; fi; \
	rm -rf "$$state" $(OUTPUTS) && echo "Removed $$state and test output."
