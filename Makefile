# voicebot: `make demo` runs a simulated call on the offline stack, `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/voicebot
LOCK_HASH := $(shell sha256sum requirements.lock | cut -c1-12)
VENV := $(CACHE_DIR)/venv-$(LOCK_HASH)
PY := $(VENV)/bin/python
TOOLS_DIR := $(CACHE_DIR)/tools
export VOICEBOT_MODELS_DIR ?= $(CACHE_DIR)/models
export VOICEBOT_TOOLS_DIR := $(TOOLS_DIR)
# The source folders, absolute, from pyproject.toml (their only list; nothing is pip-installed
# into the venv, which other clones share).
export PYTHONPATH := $(shell $(PYTHON) scripts/pythonpath.py)
ifeq ($(PYTHONPATH),)
$(error scripts/pythonpath.py failed: PYTHON=$(PYTHON) must be Python 3.11+ (tomllib))
endif
export HF_HUB_OFFLINE := 1
PYTEST_ARGS ?=

print-venv:
	@echo $(VENV)

print-pythonpath:
	@echo $(PYTHONPATH)

.PHONY: print-venv print-pythonpath help venv deps models models-small lint check-deploy check-observability test demo up down \
        bench faults render-k8s images test-images lock clean

help:
	@echo "make demo    a whole simulated call on local models (installs what it needs)"
	@echo "make test    lint, deployment and observability checks, every test suite"
	@echo "make up      the stack in the background (make down stops it)"
	@echo "make bench   benchmarks (voice-to-voice latency, dialer throughput and pacing)"
	@echo "make faults  fault harness: workers, dialer, Twilio REST, Redis and gateways broken mid-call (docs/reliability.md)"
	@echo "make models  local model weights into $(VOICEBOT_MODELS_DIR)"
	@echo "make images  every container image (docker, or podman when no Docker engine answers)"

# The venv lives outside the checkout, keyed by the lock's hash: a new clone with the same lock
# reuses it, a changed lock builds a fresh one.
venv: $(VENV)/.ok
$(VENV)/.ok:
	@mkdir -p $(CACHE_DIR)
	@rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(VENV)/bin/pip install --quiet --no-deps -r requirements.lock 2>&1 | grep -v "is ignored"; \
	  test "$${PIPESTATUS[0]}" = 0 || { rm -rf $(VENV); exit 1; }
	@touch $@

# System packages: a redis-server binary (tests start one when nothing answers on 6379), haproxy (the
# load balancer in front of several gateways: voicebot_devstack.load_balancer), chromium (the browser
# tests drive it headless through Playwright: tests/browser).
deps:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { \
	  echo "installing haproxy"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

models: venv
	$(PY) scripts/fetch_models.py --models-dir $(VOICEBOT_MODELS_DIR) --only full

models-small: venv
	$(PY) scripts/fetch_models.py --models-dir $(VOICEBOT_MODELS_DIR) --only small

lint: venv
	$(PY) -m ruff check .

check-deploy:
	bash scripts/check-deploy.sh $(TOOLS_DIR)

check-observability: venv
	PYTHON=$(PY) bash scripts/check-observability.sh

render-k8s:
	bash scripts/fetch_deploy_tools.sh $(TOOLS_DIR)
	bash scripts/render-k8s.sh

# The images are built and run after the suites (not beside them: the timing-sensitive call tests
# share the machine's two cores). SKIP_IMAGES=1 leaves them out.
test: venv deps models-small lint check-deploy check-observability
	$(PY) -m pytest -q --durations=40 $(PYTEST_ARGS)
	@if [ -z "$(SKIP_IMAGES)" ]; then $(MAKE) --no-print-directory test-images; fi

demo: venv deps models
	$(PY) -m voicebot_devstack demo

up: venv deps models
	$(PY) -m voicebot_devstack up

down: venv
	$(PY) -m voicebot_devstack down

bench: venv deps models
	$(PY) bench/call_latency.py --mode fake --concurrency 1,4,8
	$(PY) bench/call_latency.py --mode local
	$(PY) bench/voice_to_voice.py --turns 4
	$(PY) bench/dialer_bench.py
	$(PY) bench/gateway.py
	$(PY) bench/density.py
	$(PY) bench/conversation.py --offline

faults: venv deps
	$(PY) bench/faults.py

# Every folder's pyproject.toml dependencies and requirements.in, installed and frozen into
# requirements.lock; then the per-image locks (docker/locks) from it.
# Every image of docker/Dockerfile, installed offline from wheels resolved here (docker or podman).
images: venv
	PY=$(PY) CACHE_DIR=$(CACHE_DIR) bash scripts/build_images.sh

# The stack from those images under the chart's pod specs (podman kube play): endpoints, an inbound
# and an outbound call, a bot-worker drain (scripts/test_images.py).
test-images: images
	bash scripts/fetch_deploy_tools.sh $(TOOLS_DIR)
	CACHE_DIR=$(CACHE_DIR) $(PY) scripts/test_images.py

lock: venv
	$(PY) scripts/image_locks.py requirements > $(CACHE_DIR)/requirements-all.txt
	$(PY) -m pip install --quiet -r $(CACHE_DIR)/requirements-all.txt
	$(PY) -m pip freeze --exclude-editable > requirements.lock
	$(PY) scripts/image_locks.py write

clean:
	rm -rf .pytest_cache .ruff_cache run
