"""Dashboards and alert rules use exactly the metric names voicebot_core.metrics defines,
follow the Prometheus naming rules, and the dashboard type-check can fail."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from obs_harness import DASHBOARDS_DIR, ROOT, RULES_DIR, dashboard_queries
from prometheus_client import Counter, Gauge, Histogram

from voicebot_core import metrics

OBSERVABILITY_DIR = ROOT / "observability"
# Series names a query may use besides ours: Prometheus's own.
BUILTIN = {"up"}
FORBIDDEN_LABELS = {"call_sid", "callsid", "phone", "number", "to", "from", "caller", "stream_sid"}


def _defined() -> dict[str, object]:
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, (Counter, Gauge, Histogram)):
            found[value._name] = value
    return found


def _series_names(defined: dict[str, object]) -> set[str]:
    names = set()
    for name, metric in defined.items():
        if isinstance(metric, Counter):
            names.add(f"{name}_total")
        elif isinstance(metric, Histogram):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def _used_metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(voicebot_[a-z0-9_]+|up)\b", expr))


def _rule_exprs() -> list[str]:
    exprs = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"]]
    return exprs


def test_metric_definitions_follow_prometheus_naming():
    for name, metric in _defined().items():
        assert name.startswith("voicebot_"), name
        if isinstance(metric, Histogram):
            assert name.endswith("_seconds"), name
        assert not FORBIDDEN_LABELS & set(metric._labelnames), (name, metric._labelnames)


def test_queries_use_only_defined_metrics_and_every_metric_is_shown():
    series = _series_names(_defined())
    dashboard_exprs = [q.expr for q in dashboard_queries()]
    used_in_dashboards: set[str] = set()
    for expr in dashboard_exprs + _rule_exprs():
        names = _used_metric_names(expr)
        assert names, expr
        assert names <= series | BUILTIN, (expr, names - series)
    for expr in dashboard_exprs:
        used_in_dashboards |= _used_metric_names(expr)
    shown = {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in used_in_dashboards}
    missing = [name for name in _defined() if name not in shown]
    assert missing == []


def test_dashboards_use_the_datasource_variable_everywhere():
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                assert 'namespace=~"$namespace"' in target["expr"], (path.name, panel["title"])


@pytest.mark.slow
def test_dashboard_type_check_rejects_a_broken_dashboard(tmp_path: Path):
    tsc = OBSERVABILITY_DIR / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "run scripts/fetch_obs_tools.sh"
    broken_dir = tmp_path / "dashboards"
    broken_dir.mkdir()
    board = json.loads((DASHBOARDS_DIR / "voicebot-calls.json").read_text())
    board["templating"]["list"][0]["type"] = "datasourcee"   # not a Grafana variable type
    board["panels"][1]["gridPos"] = {"h": 4, "w": 6}          # x and y are required
    (broken_dir / "broken.json").write_text(json.dumps(board))
    out_dir = OBSERVABILITY_DIR / "generated" / f"test-{tmp_path.name}"
    out_file = out_dir / "check.ts"
    try:
        gen = subprocess.run(["node", "gen-dashboard-checks.mjs"], cwd=OBSERVABILITY_DIR, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "DASHBOARDS_DIR": str(broken_dir),
                                  "OUT_FILE": str(out_file)}, capture_output=True, text=True)
        assert gen.returncode == 0, gen.stderr
        check = subprocess.run([str(tsc), "--noEmit", "--strict", "--skipLibCheck", "--target", "ES2022",
                                "--module", "ESNext", "--moduleResolution", "Bundler",
                                str(out_file)], cwd=OBSERVABILITY_DIR, timeout=120, capture_output=True, text=True)
    finally:
        for path in out_dir.glob("*"):
            path.unlink()
        if out_dir.exists():
            out_dir.rmdir()
    assert check.returncode != 0
    assert "datasourcee" in check.stdout
    assert "'x'" in check.stdout or "x, y" in check.stdout or "missing" in check.stdout, check.stdout
