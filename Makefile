# Two commands do all set-up: `make run` (the main job) and `make test` (the test suite);
# `make lint` checks the code with ruff and mypy (settings in pyproject.toml).
# Both create .venv on first use and install the project with its embedded model and the team
# extra (PostgreSQL driver, PySpark, Kubernetes client), which the tests of a team's set-up use.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
RAW_INPUT ?= Classify the sentiment of a movie review as positive or negative
PYTEST_ARGS ?=

# LiteLLM: use its bundled price table instead of fetching one at every import.
export LITELLM_LOCAL_MODEL_COST_MAP := True
# llama-cpp-python compiles llama.cpp on first install; these skip the parts we do not use.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: run test lint install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing promptomatix and its embedded model. The first install on a machine compiles llama.cpp: this can take 10-20 minutes."
	$(BIN)/python -m pip install --progress-bar off -e ".[embedded,team,test]"
	touch $@

# `mlflow run` creates the run, in the experiment it is given (else in Default), before the entry
# point starts; so the run is filed under the prompt's registered name here, as `promptomatix
# optimize` files its own runs. Expanded when the recipe runs, after `install`.
EXPERIMENT = $(shell $(BIN)/python pipelines/experiment_name.py "$(RAW_INPUT)")

run: install
	PATH="$(BIN):$$PATH" mlflow run . --env-manager local --experiment-name "$(EXPERIMENT)" -P raw_input="$(RAW_INPUT)"

test: install
	PATH="$(BIN):$$PATH" python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
