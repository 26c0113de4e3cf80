#!/usr/bin/env bash
# Fetch the API contract checkers into a venv of their own under the tools cache (kept out of
# requirements.lock so the shared venv does not change): schemathesis (fuzzes the dialer API
# against its OpenAPI document) and openapi-python-client (generates a client from it; its
# output needs httpx + attrs, installed alongside). Idempotent, pinned, one fetch at a time.
#
#   scripts/fetch_api_tools.sh [CACHE_DIR]      (default $HOME/.cache/voicebot/tools)
#
# Prints the venv's directory on stdout; CACHE_DIR/bin holds schemathesis (`st`) and
# openapi-python-client.
set -euo pipefail

TOOLS_DIR="${1:-${HOME}/.cache/voicebot/tools}"
PYTHON="${PYTHON:-python3}"
# Pinned so every machine checks with the same tools; bump deliberately (the venv name follows).
SCHEMATHESIS_PKG="schemathesis==4.32.5"
GENERATOR_PKG="openapi-python-client==0.29.1"
VENV="${TOOLS_DIR}/venv-api-4.32.5-0.29.1"

BIN="${TOOLS_DIR}/bin"
mkdir -p "${BIN}"
log() { printf 'fetch-api-tools: %s\n' "$*" >&2; }
# pip's "Location ... is ignored" notes come from this machine's pip config, not from us.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

exec 9>"${TOOLS_DIR}/.lock"
flock 9

if [[ ! -e "${VENV}/.ok" ]]; then
  log "schemathesis + openapi-python-client into ${VENV} (a minute cold)"
  rm -rf "${VENV}"
  "${PYTHON}" -m venv "${VENV}"
  quiet_pip "${VENV}/bin/pip" install --quiet --disable-pip-version-check "${SCHEMATHESIS_PKG}" "${GENERATOR_PKG}" \
    || { rm -rf "${VENV}"; exit 1; }
  touch "${VENV}/.ok"
fi
ln -sf "${VENV}/bin/st" "${BIN}/schemathesis"
ln -sf "${VENV}/bin/openapi-python-client" "${BIN}/openapi-python-client"
echo "${VENV}"
