# Two commands on a fresh clone: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tools run test lint bench clean docs docs-tools

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


# The docs' build tools, in the same .venv (tests/test_docs.py runs the strict build).
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): docs/requirements.txt $(STAMP)
	@$(BIN)/pip install --quiet --disable-pip-version-check -r docs/requirements.txt
	@touch $(DOCS_STAMP)

docs-tools: $(DOCS_STAMP)

# The site goes to site/ (gitignored); --strict turns a broken link or anchor into an error.
docs: docs-tools
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: setup tools docs-tools
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-py313

# The unit tests alone (no runtime processes, emulator, packaging or long runs): under a minute.
.PHONY: test-fast
test-fast: setup docs-tools
	$(BIN)/pytest -q -m "not (e2e or emulator or packaging or slow)"

# The runtime's unit and end-to-end tests again under Python 3.13 (Debian trixie), in a chroot
# cached in out/cache/py313 (first run: about a minute more). Extra pytest arguments: PYTEST_ARGS.
.PHONY: test-py313
test-py313: tools
	sh tests/py313/run.sh $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check runtime tests examples bench
	$(BIN)/mypy

# wrk drives the emulator benchmark's Invoke API load.
bench: setup
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench

# 10,000 invokes at 8 connections through the emulator (loopback, bounded); CI runs a short one.
.PHONY: soak
soak: setup
	$(BIN)/python tests/soak/soak.py --invokes 10000 --connections 8

clean:
	rm -rf $(VENV) out site mutants .pytest_cache .mypy_cache .ruff_cache lambda_runtime.egg-info

# Mutation testing of the runtime's hot-path and protocol modules (slow; not in CI). Results
# are cached in mutants/ (delete it for a fresh run); the report goes to out/mutation/report.md.
# MUTANTS narrows the run, e.g. make mutate MUTANTS='runtime.protocol.*'. See tests/mutation/.
MUTATE_STAMP := $(VENV)/.mutate-installed
MUTATE_JOBS ?= 2
MUTANTS ?=
$(MUTATE_STAMP): tests/mutation/requirements.txt $(STAMP)
	$(BIN)/pip install --quiet -r tests/mutation/requirements.txt
	touch $(MUTATE_STAMP)

.PHONY: mutate
mutate: $(MUTATE_STAMP)
	mkdir -p mutants out/mutation
	cp tests/mutation/sitecustomize.py mutants/sitecustomize.py
	nice -n 10 $(BIN)/python tests/mutation/run.py --jobs $(MUTATE_JOBS) $(MUTANTS)
	$(BIN)/python tests/mutation/report.py --out out/mutation/report.md
