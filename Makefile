# One entry point for people and CI. Everything runs inside .venv and offline after install.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3

# No model or data is fetched at run time; no telemetry leaves the machine.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-slow test-all lint format params bench clean stack-up stack-down stack-status

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, from the CPU wheel: if another package pulled it in, pip would fetch CUDA builds.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed

# One id for the whole execution, so its dedup, train and evaluate runs share the MLflow tag
# `pipeline_run` (runs started without it get a hash of commit, data and params).
run: setup
	PIPELINE_RUN=$$(date -u +%Y%m%dT%H%M%SZ)-$$(git rev-parse --short HEAD 2>/dev/null || echo nogit) \
		$(BIN)/dvc repro
	$(PY) -m pipeline summary

# `make test` is the suite a developer runs (about 10 minutes on 2 cores); the tests marked
# slow (servers, whole pipelines, real datasets: about 40 minutes) run in CI after it.
test: setup
	$(PY) -m pytest -q -m "not slow" --durations=15 $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -q -m slow --durations=15 $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check pipeline tests benchmarks
	$(BIN)/ruff format --check pipeline tests benchmarks

format: setup
	$(BIN)/ruff format pipeline tests benchmarks
	$(BIN)/ruff check --fix pipeline tests benchmarks

# params.yaml is what `dvc exp run` would compose from conf/; regenerate it after editing conf/.
params: setup
	$(PY) -m pipeline.config --write params.yaml

bench: setup
	$(PY) benchmarks/dedup.py
	$(PY) benchmarks/embed.py
	$(PY) benchmarks/search.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/serve.py

# A team's stack on this machine (docs/team.md): PostgreSQL, MLflow with basic auth and
# proxied artifacts, a WebDAV DVC remote; state, logs and credentials in .stack/ (untracked).
stack-up: setup
	$(PY) -m pipeline.stack up

stack-down: setup
	$(PY) -m pipeline.stack down

stack-status: setup
	$(PY) -m pipeline.stack status

clean:
	rm -rf data/dedup data/index data/cache models reports mlruns mlflow.db
