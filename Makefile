# esteira: the two commands are `make demo` and `make test`. Everything else is a building block
# that Jenkins and GitHub Actions call by name, so every pipeline runs the same commands.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV        ?= .venv
PY          := $(VENV)/bin/python
UV_VERSION  := 0.13.9
LOCK        ?= requirements/dev.lock
REPORTS     ?= reports
TOOLS_DIR   ?= $(HOME)/.cache/esteira/tools

# Point the loader at a local copy of BANKING77 when this machine has one (CI here does); otherwise
# the loader downloads it from the public source into ~/.cache/esteira.
SHARED_DATA := $(abspath ../shared/data/banking77)
ifneq ($(wildcard $(SHARED_DATA)/train.csv),)
export ESTEIRA_DATA_DIR ?= $(SHARED_DATA)
endif

PY_DIRS    := $(wildcard model pipelines lambdas localaws oci demo tests benchmarks infra/cdk)
TYPED_DIRS := $(wildcard model pipelines lambdas oci)

# Pytest always writes JUnit XML (Jenkins, GitHub and Qase read it) and coverage.
PYTEST_ARGS ?=
PYTEST = $(PY) -m pytest --junitxml=$(REPORTS)/junit-$@.xml --cov=model --cov=pipelines --cov=lambdas \
          --cov-report=xml:$(REPORTS)/coverage-$@.xml --cov-report=term:skip-covered $(PYTEST_ARGS)

.PHONY: help venv demo demo-down test test-all test-slow lint fmt asl benchmark benchmark-loop clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --python $(PY) $(LOCK)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

venv: $(VENV)/.installed ## create .venv from the lock file (seconds when cached)

demo: venv ## the whole loop locally: train, deploy, serve, drift, alarm, retrain (time: docs/benchmarks.md; report in reports/)
	$(PY) -m demo.run

demo-down: ## stop a running demo and every process it started
	$(PY) -m demo.down

test: venv ## the default suite (< 10 min): unit + integration, slow suites excluded
	@mkdir -p $(REPORTS)
	$(PYTEST) -m "not slow"

test-slow: venv ## only the slow suites (full-data accuracy, Terraform apply, soak)
	@mkdir -p $(REPORTS)
	$(PYTEST) -m "slow"

test-all: venv ## everything, as CI runs it
	@mkdir -p $(REPORTS)
	$(PYTEST)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check $(PY_DIRS)
	$(VENV)/bin/mypy $(TYPED_DIRS)

fmt: venv ## apply ruff formatting and fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format $(PY_DIRS)

asl: ## rebuild stepfunctions/*.asl.json from stepfunctions/src/ (named retry policies written out)
	$(PYTHON_BOOT) scripts/build_asl.py

benchmark: venv ## training benchmark -> docs/benchmarks.md
	$(PY) -m benchmarks.train

benchmark-loop: venv ## time the whole loop (make demo) -> docs/benchmarks.md
	$(PY) -m benchmarks.loop

clean: ## remove local state (not the tool cache)
	rm -rf .esteira $(REPORTS) .pytest_cache .mypy_cache .ruff_cache

-include mk/*.mk
