"""Every dashboard panel query and every alert rule, run by a real Prometheus scraping /metrics.

The targets here are stand-ins driving voicebot_core.metrics (metrics_driver.py), one process per
service and two bot-workers; the live-stack test runs the same checks with the real services.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from obs_harness import (
    ROOT,
    PanelQuery,
    PrometheusServer,
    ScrapeTarget,
    dashboard_queries,
    free_port,
    prometheus_server,
    run_dashboard_queries,
)

DRIVER = Path(__file__).with_name("metrics_driver.py")
# (driver role, Kubernetes service, pod): two bot-workers so per-worker panels have two series.
SERVICES = [
    ("gateway", "voicebot-gateway", "gateway-0"),
    ("bot-worker", "voicebot-bot-worker", "bot-worker-0"),
    ("bot-worker", "voicebot-bot-worker", "bot-worker-1"),
    ("dialer-api", "voicebot-dialer-api", "dialer-api-0"),
    ("dialer-worker", "voicebot-dialer-worker", "dialer-worker-0"),
]


@pytest.fixture(scope="module")
def metric_targets() -> Iterator[list[ScrapeTarget]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "packages" / "core")}
    procs, targets = [], []
    try:
        for role, service, pod in SERVICES:
            port = free_port()
            proc = subprocess.Popen([sys.executable, str(DRIVER), role, str(port)], env=env,
                                    stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", f"{role} driver failed"
            targets.append(ScrapeTarget(f"127.0.0.1:{port}", service, pod))
        yield targets
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def prom(metric_targets, tmp_path_factory) -> Iterator[PrometheusServer]:
    with prometheus_server(metric_targets, tmp_path_factory.mktemp("prometheus")) as server:
        server.wait_for_samples(samples=4)
        yield server


def test_every_target_is_scraped(prom):
    health = prom.target_health()
    assert len(health) == len(SERVICES)
    assert all(target["health"] == "up" for target in health), health


def test_every_dashboard_panel_query_returns_data(prom):
    queries = dashboard_queries()
    assert len(queries) >= 40
    assert {q.dashboard for q in queries} == {"voicebot-calls.json", "voicebot-latency.json",
                                             "voicebot-dialer.json", "voicebot-capacity.json"}
    problems = run_dashboard_queries(prom, queries)
    assert problems == {"errors": [], "empty": [], "nan": []}


def test_the_query_check_catches_broken_panels(prom):
    broken = [
        PanelQuery("x.json", "typo in a metric", "A", 'sum(voicebot_active_call{namespace=~"$namespace"})'),
        PanelQuery("x.json", "bad syntax", "A", "sum(rate(voicebot_interruptions_total[$__rate_interval])"),
        PanelQuery("x.json", "wrong label value", "A", 'sum(voicebot_active_calls{direction="sideways"})'),
        PanelQuery("x.json", "unknown variable", "A", "sum(voicebot_active_calls{pod=~\"$pod\"})"),
    ]
    problems = run_dashboard_queries(prom, broken)
    assert len(problems["errors"]) == 2 and len(problems["empty"]) == 2


def test_alert_rules_load_and_evaluate(prom):
    deadline = time.monotonic() + 15
    while True:
        rules = [rule for group in prom.rule_groups() for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, "rules were not evaluated"
        time.sleep(0.5)
    assert len(rules) >= 15
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
