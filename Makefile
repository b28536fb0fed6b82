# Entry points. `make` lists them. `make run` and `make test` set up whatever they need.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
# `pip install --user uv` puts uv/uvx here; tests call uvx (checkov), so keep it on PATH.
export PATH := $(HOME)/.local/bin:$(PATH)
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
CONFIG ?= conf/pipeline.yaml
export PYTHONPATH := $(CURDIR)/jobs:$(CURDIR)
# Tests may choose their own; keep Spark quiet and local by default.
export PYSPARK_PYTHON := $(CURDIR)/.venv/bin/python

.PHONY: help setup run test test-fast lint fmt clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	@touch $@

.jars/.fetched: pyproject.toml tools/fetch_jars.py | .venv/.synced
	$(RUN) python tools/fetch_jars.py
	@touch $@

# Class-data archive of Spark + Delta for quicker local JVM starts (optional: see the script).
.jars/.cds: .jars/.fetched tools/spark_cds.py
	$(RUN) python tools/spark_cds.py
	@touch $@

setup: .venv/.synced .jars/.fetched .jars/.cds ## Install Python deps (uv, locked), the Delta/s3a jars (mvn) and a class-data archive of them

# The local source of `make run`: postgres (a throwaway PostgreSQL replicated by capture/, the
# default) or demo (the synthetic DMS generator). RUN_ARGS: more run_demo options (--hours ...).
SOURCE ?= postgres
RUN_ARGS ?=
run: setup $(if $(filter postgres,$(SOURCE)),postgres-deps) ## Replicate a throwaway PostgreSQL through the DAGs and the job; check lake == source
	$(RUN) python -m demo.run_demo --config $(CONFIG) --source $(SOURCE) $(RUN_ARGS)

# Two workers (one per core), whole files per worker (module fixtures stay together), handed out
# in collection order, which tests/conftest.py sorts costliest file first. A third worker was
# slower on the 2-core machine (CI 39 min 38 s vs 35 min 55 s): the JVMs saturate it.
PYTEST_WORKERS ?= 2
test: setup ## Run the whole test suite (the 30 slowest tests are listed at the end)
	$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30 $(PYTEST_ARGS)

# The edit loop: unit tests and DAG structure tests, nothing that starts a JVM, Airflow's
# database, moto, PostgreSQL or the CDK (tests are marked by what they start: tests/conftest.py).
FAST_MARKERS := not (spark or airflow or moto or cdk or postgres or slow)
test-fast: .venv/.synced ## Unit and DAG structure tests only (no JVM, no servers; < 1 minute)
	$(RUN) pytest -q -m "$(FAST_MARKERS)" tests/unit tests/dags tests/infra $(PYTEST_ARGS)

lint: setup ## ruff (lint + format check) and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

fmt: setup ## Format the code
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean: ## Remove the local lake, caches and build output (keeps .venv and .jars)
	rm -rf lakehouse spark-warehouse metastore_db derby.log .pytest_cache dist

-include infra/infra.mk
-include sql/sql.mk
-include bench/bench.mk
-include demo/demo.mk
-include demo/airflow.mk
