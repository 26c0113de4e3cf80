#!/usr/bin/env bash
# Offline checks of the observability files (the Python side, live Prometheus queries and the
# OTLP receiver, is tests/observability, run by pytest):
#   - promtool check rules on charts/voicebot/rules/*.yaml
#   - promtool test rules on observability/rules-tests/*.yaml (every alert firing and not firing)
#   - the Grafana dashboards type-checked against @grafana/schema (observability/, tsc --noEmit)
# Installs what is missing first (scripts/fetch_obs_tools.sh).
#
#   scripts/check-observability.sh
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/fetch_obs_tools.sh || { echo "check-observability: could not fetch tools" >&2; exit 2; }

declare -a SUMMARY=()
FAILED=0

# run_step NAME COMMAND...: runs a step, records PASS/FAIL with its duration.
run_step() {
  local name="$1" start=${SECONDS}
  shift
  echo "=== ${name}"
  if "$@"; then
    SUMMARY+=("PASS  ${name} ($((SECONDS - start))s)")
  else
    SUMMARY+=("FAIL  ${name} ($((SECONDS - start))s)")
    FAILED=1
  fi
}

check_rules() { promtool check rules charts/voicebot/rules/*.yaml; }
test_rules() { promtool test rules observability/rules-tests/*.yaml; }
typecheck_dashboards() {
  (cd observability && node gen-dashboard-checks.mjs && node_modules/.bin/tsc --noEmit -p .)
}

run_step "promtool check rules" check_rules
run_step "promtool test rules" test_rules
run_step "dashboards satisfy @grafana/schema Dashboard" typecheck_dashboards

echo
printf '%s\n' "${SUMMARY[@]}"
exit "${FAILED}"
