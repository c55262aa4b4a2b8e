# nowcast: every target is a one-liner over the `nowcast` command or pytest.
# `make setup` builds .venv from nothing; the other targets run it first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Installed before everything else so no dependency pulls another (multi-GB) torch build.
TORCH_VERSION ?= 2.13.0
STAMP  := $(VENV)/.installed
DATA   ?=

.PHONY: setup lint test test-fast demo bench clean help

help:
	@echo "make setup | lint | test | test-fast | demo [DATA=dir [INPUT_TIME_STEP=s]] | bench | clean"

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy nowcast

test: lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

demo: $(STAMP)
	$(BIN)/nowcast demo $(if $(DATA),--data $(DATA),) $(if $(INPUT_TIME_STEP),--input-time-step $(INPUT_TIME_STEP),)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo-output bench-output runs .pytest_cache .mypy_cache
