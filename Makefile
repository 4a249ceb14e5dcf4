# Coral: `make demo` and `make test` work on a fresh machine with only python3 (3.11+).
#
#   make demo    build .venv (torch + the viz extra) and run examples/demo.py on ./demo-repo
#   make test    build .venv with every extra, install the servers tests use (Debian, npm), run pytest
#   make lint    ruff + mypy on coral/
#   make bench   run every benchmark in benchmarks/
#   make clean   remove .venv and generated files
#
# PyTorch goes in first and pinned (torch==2.13.0, the CPU build here): packages that depend on
# it, installed before it, would pull a multi-GB CUDA build. Stamp files make each step run once
# (again when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP_TORCH := $(VENV)/.stamp-torch
STAMP_DEMO := $(VENV)/.stamp-demo
STAMP_ALL := $(VENV)/.stamp-all
DEMO_REPO := demo-repo
# Azurite (the Azure Blob test server) from npm, into a project-local folder (ignored by git);
# newer Azurite needs node 22, this one runs on node 20. Without npm the Azure tests skip.
NODE_DIR := .cache/node
AZURITE := azurite@3.35.0
STAMP_AZURITE := $(NODE_DIR)/.stamp-$(subst @,-,$(AZURITE))
# binary:Debian package pairs the test suite needs (real servers, headless browser, a real
# terminal for `coral browse`)
TEST_DEBS := redis-server:redis-server chromium:chromium tmux:tmux dot:graphviz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench clean test-debs venv .venv

.venv venv: $(STAMP_TORCH)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_TORCH): | $(BIN)/python
	$(BIN)/pip install $(TORCH)
	touch $@

# editable_mode=compat: a path entry, not an import hook consulted on every import (start-up)
EDITABLE = --config-settings editable_mode=compat

$(STAMP_DEMO): $(STAMP_TORCH) pyproject.toml
	$(BIN)/pip install $(EDITABLE) -e '.[torch,viz]'
	touch $@

$(STAMP_ALL): $(STAMP_TORCH) pyproject.toml
	$(BIN)/pip install $(EDITABLE) -e '.[all]'
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	rm -rf $(DEMO_REPO)
	$(BIN)/python examples/demo.py $(DEMO_REPO)

test-debs:
	@missing=""; \
	for pair in $(TEST_DEBS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y $$missing; \
	fi

$(STAMP_AZURITE):
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p $(NODE_DIR) && \
		npm install --prefix $(NODE_DIR) --no-audit --no-fund $(AZURITE) && touch $@; \
	else \
		echo "npm not found: the Azure Blob tests will be skipped (install node 20 and npm)"; \
	fi

test: $(STAMP_ALL) test-debs $(STAMP_AZURITE)
	$(BIN)/python -m pytest

lint: $(STAMP_ALL)
	$(BIN)/ruff check coral
	$(BIN)/mypy coral

bench: $(STAMP_ALL)
	@set -e; for f in benchmarks/*.py; do \
		name=$$(basename $$f .py); \
		case $$name in _*) continue;; esac; \
		grep -q '__main__' $$f || continue; \
		echo "== benchmarks.$$name"; \
		$(BIN)/python -m benchmarks.$$name; \
	done

clean:
	rm -rf $(VENV) $(DEMO_REPO) $(NODE_DIR) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
