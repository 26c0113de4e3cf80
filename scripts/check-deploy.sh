#!/usr/bin/env bash
# Offline checks of the deployment files: hadolint on docker/Dockerfile, helm lint --strict and
# helm template of every values case, kubernetes-validate --strict on the output and on k8s/
# (a WARN fails), the chart's render guards (drain wait vs grace period, ...), k8s/ in sync
# with the chart, and checkov with every failure either fixed or skipped with a written reason.
# No Docker engine and no API server are involved; see docs/deploy.md for what that leaves out.
#
#   scripts/check-deploy.sh [TOOLS_DIR]     (default $VOICEBOT_TOOLS_DIR or ~/.cache/voicebot/tools)
set -uo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR="${1:-${VOICEBOT_TOOLS_DIR:-${HOME}/.cache/voicebot/tools}}"
CHART=charts/voicebot
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS=(1.25.0 1.33.0)
NAMESPACE=voicebot

bash scripts/fetch_deploy_tools.sh "${TOOLS_DIR}" || { echo "check-deploy: could not fetch tools" >&2; exit 2; }
export PATH="${TOOLS_DIR}/bin:${PATH}"
VALIDATE_PY="${TOOLS_DIR}/venv-validate/bin/python"

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
declare -a SUMMARY=()
FAILED=0
START_ALL=${SECONDS}

# run_step NAME FUNCTION: runs a step, records PASS/FAIL with its duration.
run_step() {
  local name="$1" fn="$2" start=${SECONDS}
  echo "=== ${name}"
  if "${fn}"; then
    SUMMARY+=("PASS  ${name} ($((SECONDS - start))s)")
  else
    SUMMARY+=("FAIL  ${name} ($((SECONDS - start))s)")
    FAILED=1
  fi
}

# kubernetes-validate prints WARN (e.g. unknown kind or removed apiVersion) with exit 0: count it.
kube_validate() {
  local file="$1" version="$2" out
  out="$(kubernetes-validate --strict --quiet -k "${version}" "${file}" 2>&1)"
  local rc=$?
  if [[ ${rc} -ne 0 ]] || grep -qE '^(WARN|ERROR)' <<<"${out}"; then
    echo "${out}"
    return 1
  fi
}

# Custom resources are checked by scripts/deploy_manifests.py, the rest by kubernetes-validate.
validate_manifests() {
  local file="$1" version="$2" builtin="${1%.yaml}.builtin.yaml"
  "${VALIDATE_PY}" scripts/deploy_manifests.py "${file}" "${builtin}" >/dev/null || return 1
  kube_validate "${builtin}" "${version}"
}

values_cases() {
  echo default
  for f in "${CHART}"/ci/*-values.yaml; do basename "${f}" -values.yaml; done
}

values_args() {
  [[ "$1" == default ]] || echo "-f ${CHART}/ci/$1-values.yaml"
}

step_hadolint() {
  hadolint --failure-threshold style docker/Dockerfile
}

step_lint() {
  local ok=0 case
  for case in $(values_cases); do
    # shellcheck disable=SC2046
    helm lint --strict --quiet "${CHART}" $(values_args "${case}") >"${WORK}/lint.log" 2>&1 \
      || { cat "${WORK}/lint.log"; echo "helm lint failed: ${case}"; ok=1; }
  done
  return ${ok}
}

step_template_validate() {
  local ok=0 case version out
  mkdir -p "${WORK}/rendered"
  for version in "${KUBE_VERSIONS[@]}"; do
    for case in $(values_cases); do
      out="${WORK}/rendered/${case}-${version}.yaml"
      # shellcheck disable=SC2046
      if ! helm template voicebot "${CHART}" --namespace "${NAMESPACE}" --kube-version "${version}" \
          $(values_args "${case}") >"${out}" 2>"${WORK}/template.err"; then
        cat "${WORK}/template.err"; echo "helm template failed: ${case} (k8s ${version})"; ok=1; continue
      fi
      validate_manifests "${out}" "${version}" || { echo "invalid manifests: ${case} (k8s ${version})"; ok=1; }
    done
  done
  return ${ok}
}

# helm template skips NOTES.txt; a client-side dry-run install renders it without a cluster.
step_notes() {
  local ok=0 case
  for case in $(values_cases); do
    # shellcheck disable=SC2046
    helm install voicebot "${CHART}" --namespace "${NAMESPACE}" --dry-run=client $(values_args "${case}") \
      >"${WORK}/notes.out" 2>&1 || { cat "${WORK}/notes.out"; echo "NOTES.txt failed: ${case}"; ok=1; continue; }
    grep -q '^NOTES:' "${WORK}/notes.out" || { echo "no NOTES rendered: ${case}"; ok=1; }
  done
  return ${ok}
}

# expect_render_failure DESCRIPTION EXPECTED_MESSAGE HELM_ARGS...
expect_render_failure() {
  local what="$1" message="$2"
  shift 2
  if helm template voicebot "${CHART}" "$@" >/dev/null 2>"${WORK}/guard.err"; then
    echo "rendered although it must not: ${what}"; return 1
  fi
  if ! grep -qF -- "${message}" "${WORK}/guard.err"; then
    echo "failed without the expected message for ${what}:"; cat "${WORK}/guard.err"; return 1
  fi
  echo "refused as expected: ${what}"
}

step_guards() {
  local ok=0
  expect_render_failure "bot-worker drain longer than its grace period" \
    "botWorker: drain wait 3700s (preStop delay 0s + drain timeout 3700s) exceeds terminationGracePeriodSeconds 3660s" \
    --set botWorker.drain.timeoutSeconds=3700 || ok=1
  expect_render_failure "gateway preStop delay + drain longer than its grace period" \
    "gateway: drain wait 3670s (preStop delay 70s + drain timeout 3600s) exceeds terminationGracePeriodSeconds 3660s" \
    --set gateway.drain.preStopDelaySeconds=70 || ok=1
  expect_render_failure "grace period shortened below the drain" \
    "exceeds terminationGracePeriodSeconds 600s" --set botWorker.terminationGracePeriodSeconds=600 || ok=1
  expect_render_failure "HPA and KEDA together" "enable either autoscaling (HPA) or keda" \
    --set botWorker.autoscaling.enabled=true --set botWorker.keda.enabled=true || ok=1
  expect_render_failure "chart-made Secret without the Twilio auth token" \
    "secrets.twilioAuthToken is required" --set secrets.create=true || ok=1
  expect_render_failure "chart-made Secret without the dialer webhook secret" \
    "secrets.dialerWebhookSecret is required" --set secrets.create=true --set secrets.twilioAuthToken=t \
    --set secrets.streamTicketSecret=s --set secrets.dialerApiKeys=k || ok=1
  # The boundary: a drain exactly as long as the grace period still renders.
  helm template voicebot "${CHART}" --set botWorker.drain.timeoutSeconds=3660 >/dev/null \
    || { echo "drain == grace period must render"; ok=1; }
  return ${ok}
}

step_k8s_in_sync() {
  bash scripts/render-k8s.sh "${WORK}/voicebot.yaml" || return 1
  if ! diff -u k8s/base/voicebot.yaml "${WORK}/voicebot.yaml" >"${WORK}/k8s.diff"; then
    head -n 40 "${WORK}/k8s.diff"
    echo "k8s/base/voicebot.yaml is stale: run scripts/render-k8s.sh"
    return 1
  fi
}

step_k8s_validate() {
  local ok=0 dir name version
  for dir in k8s/base k8s/overlays/*/; do
    name="$(basename "${dir}")"
    kubectl kustomize "${dir}" >"${WORK}/k8s-${name}.yaml" || { echo "kustomize failed: ${dir}"; ok=1; continue; }
    for version in "${KUBE_VERSIONS[@]}"; do
      validate_manifests "${WORK}/k8s-${name}.yaml" "${version}" || { echo "invalid: ${dir} (k8s ${version})"; ok=1; }
    done
  done
  return ${ok}
}

step_checkov() {
  local skips ok=0
  skips="$("${VALIDATE_PY}" - tests/deploy/checkov-skips.yaml <<'PY'
import sys, yaml
reasons = yaml.safe_load(open(sys.argv[1])) or {}
missing = [k for k, v in reasons.items() if not str(v or "").strip()]
if missing:
    sys.exit("checkov skips without a reason: " + ", ".join(missing))
print(",".join(sorted(reasons)))
PY
)" || return 1
  echo "skipped with a written reason (tests/deploy/checkov-skips.yaml): ${skips}"
  mkdir -p "${WORK}/checkov"
  cp "${WORK}"/rendered/*-"${KUBE_VERSIONS[-1]}".yaml "${WORK}"/k8s-*.yaml "${WORK}/checkov/" 2>/dev/null
  rm -f "${WORK}"/checkov/*.builtin.yaml
  export BC_SKIP_MAPPING=TRUE
  checkov -d "${WORK}/checkov" --framework kubernetes --compact --quiet --skip-download \
    --skip-check "${skips}" || ok=1
  checkov -d docker --framework dockerfile --compact --quiet --skip-download || ok=1
  return ${ok}
}

# CHECK_DEPLOY_ONLY="step_a step_b" runs a subset (used by tests/deploy); default: every step.
selected() { [[ -z "${CHECK_DEPLOY_ONLY:-}" || " ${CHECK_DEPLOY_ONLY} " == *" $1 "* ]]; }
selected step_hadolint && run_step "hadolint (docker/Dockerfile)" step_hadolint
selected step_lint && run_step "helm lint --strict (default + ci values)" step_lint
selected step_template_validate \
  && run_step "helm template + kubernetes-validate --strict (k8s ${KUBE_VERSIONS[*]})" step_template_validate
selected step_notes && run_step "NOTES.txt renders (helm install --dry-run=client)" step_notes
selected step_guards && run_step "render guards (drain vs grace period, HPA+KEDA, secrets)" step_guards
selected step_k8s_in_sync && run_step "k8s/ in sync with the chart" step_k8s_in_sync
selected step_k8s_validate && run_step "kustomize k8s/ + kubernetes-validate --strict" step_k8s_validate
# checkov reads the rendered cases and k8s/ output of the two steps before it.
selected step_checkov && run_step "checkov (rendered manifests, k8s/, docker/Dockerfile)" step_checkov

echo
echo "check-deploy summary ($((SECONDS - START_ALL))s):"
printf '  %s\n' "${SUMMARY[@]}"
if [[ ${FAILED} -ne 0 ]]; then
  echo "check-deploy: FAILED"
  exit 1
fi
echo "check-deploy: all checks passed"
