# Two commands on a fresh clone: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tools run test lint bench clean

# Quiet on purpose: a first `make run` shows the emulator's lines and the answer, not pip's.
$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first run only)"
	@$(PYTHON) -m venv $(VENV)
# Left by the former setuptools install; on sys.path it would shadow the current metadata.
	@rm -rf lambda_runtime.egg-info
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install --quiet --disable-pip-version-check --editable '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# Debian tools the packaging tests use (buildah, debootstrap, unshare, ...); silent when present.
tools:
	sh tests/packaging/setup_tools.sh

run: setup
	@$(BIN)/lambda-runtime invoke app.handler --task-root examples/hello --event '{"name": "world"}'


test: setup tools
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check runtime tests examples bench
	$(BIN)/mypy

# wrk drives the emulator benchmark's Invoke API load.
bench: setup
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache lambda_runtime.egg-info
