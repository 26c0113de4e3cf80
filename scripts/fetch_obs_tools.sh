#!/usr/bin/env bash
# Install the observability checkers that are missing; idempotent, each step skipped when done:
#   - prometheus + promtool from the Debian package (real server for panel queries, rule tests)
#   - @grafana/schema + typescript into observability/node_modules (npm ci from the committed lock)
#   - rotel (PyPI wheel carrying a real OpenTelemetry collector binary) into the Python environment
#     that runs the tests, when requirements.lock has not already brought it
#
#   PYTHON=/path/to/venv/bin/python scripts/fetch_obs_tools.sh      (default: python3 on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
ROTEL_PKG="rotel==0.0.1a15"
log() { printf 'fetch-obs-tools: %s\n' "$*" >&2; }

fetch_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then return; fi
  if [[ "$(id -u)" != 0 ]]; then
    log "prometheus/promtool missing and not root: run 'apt-get install -y prometheus' as root"
    return 1
  fi
  log "prometheus + promtool from apt"
  # The Debian package starts a system service on install where an init system runs; we only
  # want the binaries, so keep policy-rc.d from starting anything.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e "${policy}" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"${policy}" && chmod +x "${policy}" && created_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [[ "${created_policy}" == 1 ]]; then rm -f "${policy}"; fi
}

fetch_npm() {
  if [[ -x observability/node_modules/.bin/tsc && -d observability/node_modules/@grafana/schema ]]; then
    return
  fi
  log "npm packages into observability/node_modules"
  if [[ -f observability/package-lock.json ]]; then
    (cd observability && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd observability && npm install --no-audit --no-fund --loglevel=error)
  fi
}

fetch_rotel() {
  if "${PYTHON}" -c "import rotel" 2>/dev/null; then return; fi
  log "${ROTEL_PKG} into $("${PYTHON}" -c 'import sys; print(sys.prefix)')"
  "${PYTHON}" -m pip install --quiet --disable-pip-version-check "${ROTEL_PKG}"
}

fetch_prometheus
fetch_npm
fetch_rotel
