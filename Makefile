# nowcast: every target is a one-liner over the `nowcast` command or pytest.
# `make setup` builds .venv from nothing; the other targets run it first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Exact versions of every package (tests and tools included): every machine, laptop or cluster
# node, installs the same set. `make lock` refreshes it from pyproject.toml's ranges.
LOCK   := requirements.lock
# Installed before everything else so no dependency pulls another (multi-GB) torch build; the
# lock names the version without a build label, so a GPU node may install its CUDA build of it.
TORCH_VERSION ?= $(or $(shell sed -n 's/^torch==//p' $(LOCK) 2>/dev/null),2.13.0)
STAMP  := $(VENV)/.installed
DATA   ?=

.PHONY: setup lock lint test test-fast demo bench clean help

help:
	@echo "make setup | lock | lint | test | test-fast | demo [DATA=dir] | bench | clean"

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check || (echo "$(LOCK) does not satisfy pyproject.toml: run make lock" && false)
	touch $@

# Resolve pyproject.toml's ranges afresh in a throw-away environment and freeze the result.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	.venv-lock/bin/python -m pip install --quiet -e ".[test]"
	(echo "# Exact versions for nowcast (make lock writes this file, make setup installs it)"; \
	 .venv-lock/bin/python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/') > $(LOCK)
	rm -rf .venv-lock

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
	rm -rf $(VENV) .venv-lock demo-output bench-output runs .pytest_cache .mypy_cache
