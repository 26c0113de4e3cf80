# voicebot: `make demo` runs a simulated call on the offline stack, `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/voicebot
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-12)
VENV := $(CACHE_DIR)/venv-$(LOCK_HASH)
PY := $(VENV)/bin/python
export VOICEBOT_MODELS_DIR ?= $(CACHE_DIR)/models
export PYTHONPATH := packages/core:packages/emulator:packages/cli:services/gateway:services/bot-worker:services/dialer
export HF_HUB_OFFLINE := 1

.PHONY: help venv lint test test-unit test-e2e lock clean

help:
	@echo "make demo   - a whole simulated call on local models (installs what it needs)"
	@echo "make test   - lint and every test suite"
	@echo "make up / make down - the stack in the background for calls by hand"

# The venv lives outside the checkout, keyed by the lock's hash: a new clone with the same
# lock reuses it, a changed lock builds a fresh one.
venv: $(VENV)/.ok
$(VENV)/.ok:
	@mkdir -p $(CACHE_DIR)
	@rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --no-deps -r requirements.lock || { rm -rf $(VENV); exit 1; }
	@touch $@

lock:
	$(PY) -m pip freeze --exclude-editable > requirements.lock

lint: venv
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf .pytest_cache .ruff_cache
