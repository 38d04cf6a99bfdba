# routellm-gateway: every command a developer or CI runs. `make help` lists them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 6060

.PHONY: help install install-dev system-deps serve classifier test lint docs docs-serve bench bench-compare bench-train bench-many container-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $@

install: $(STAMP)  ## create .venv and install the gateway (idempotent)

install-dev: $(DEV_STAMP)  ## install the gateway with test and lint tools

serve: $(STAMP)  ## run the gateway on $(HOST):$(PORT)
	$(BIN)/routellm-gateway --host $(HOST) --port $(PORT)

classifier: $(STAMP)  ## run the classifier HTTP service on 127.0.0.1:8800
	$(BIN)/routellm-classifier

system-deps:  ## Debian packages the tests start (redis-server, chromium, PostgreSQL); apt-get when missing
	scripts/system-deps.sh

test: $(DEV_STAMP) system-deps lint docs  ## the linters, the docs build, then the whole test suite (what CI runs)
	$(BIN)/pytest

lint: $(DEV_STAMP)  ## ruff and mypy strict
	$(BIN)/ruff check gateway classifier routers tests bench
	$(BIN)/ruff format --check gateway classifier routers tests bench
	$(BIN)/mypy

# MkDocs 1.6 prints a notice about its future on every run; it is not about this site.
DOCS_ENV := NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true
DOCS_PORT ?= 8000

docs: $(DEV_STAMP)  ## build the documentation site into site/ (--strict: a broken link fails; offline)
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --quiet

docs-serve: $(DEV_STAMP)  ## preview the documentation site on 127.0.0.1:$(DOCS_PORT), rebuilt on every edit
	$(DOCS_ENV) $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

bench: $(DEV_STAMP)  ## classifier and gateway benchmarks (minutes; prints figures)
	$(BIN)/python bench/classifier_bench.py

bench-compare: $(DEV_STAMP)  ## this gateway vs RouteLLM's server vs LiteLLM's proxy, one table (minutes)
	$(BIN)/python bench/compare.py

EVALS ?= routellm-evals
bench-train: $(DEV_STAMP)  ## train and distil on RouteLLM's public data in $(EVALS) (~40 min; prints figures)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/train_real.py --evals $(EVALS)

MULTI_MODEL ?= multi-model
bench-many: $(DEV_STAMP)  ## many-model routers on MMLU-Pro ($(MULTI_MODEL)) and RouteLLM's data ($(EVALS)); prints figures
	$(BIN)/python bench/many_models.py --multi-model $(MULTI_MODEL) --evals $(EVALS)

container-check: $(DEV_STAMP)  ## docker build + run: health, chat, ledger, drain (minutes; skips without docker)
	PYTHON=$(BIN)/python scripts/container-check.sh

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
