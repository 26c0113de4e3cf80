"""Building blocks for observability checks against a REAL Prometheus (the Debian binary).

- `prometheus_server(targets, rule_files)`: a throwaway Prometheus on a free loopback port
  scraping the given /metrics targets every second, with our alert rules loaded.
- `dashboard_queries()`: every PromQL expression of every panel in charts/voicebot/dashboards.
- `run_dashboard_queries(prom, ...)`: runs them all (Grafana variables expanded) and reports the
  ones that fail to parse or return no data.

The live-stack check passes the real services as targets (gateway :8080, bot-worker :8090,
dialer API :8070, dialer Celery worker :9808); the unit test passes synthetic metric drivers.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from voicebot_devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "charts" / "voicebot" / "dashboards"
RULES_DIR = ROOT / "charts" / "voicebot" / "rules"
NAMESPACE = "voicebot"


@dataclass(frozen=True)
class ScrapeTarget:
    """One /metrics endpoint, labelled the way the ServiceMonitor labels it in Kubernetes."""

    address: str          # host:port
    service: str          # e.g. voicebot-gateway, voicebot-bot-worker, voicebot-dialer-worker
    pod: str
    namespace: str = NAMESPACE
    path: str = "/metrics"


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen
    workdir: Path
    targets: list[ScrapeTarget] = field(default_factory=list)

    def query(self, expr: str, timeout: float = 5.0) -> list[dict]:
        """Instant query; raises PromQLError with Prometheus's message when it does not evaluate."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=timeout)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def wait_for_samples(self, samples: int = 3, timeout: float = 30.0) -> None:
        """Until every target is up and has been scraped at least `samples` times."""
        deadline = time.monotonic() + timeout
        expr = f"count(count_over_time(up[1m]) >= {samples} and up == 1)"
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result and int(float(result[0]["value"][1])) >= len(self.targets):
                return
            time.sleep(0.5)
        raise TimeoutError(f"targets not all scraped {samples} times: {self.target_health()}")

    def target_health(self) -> list[dict]:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5).json()
        return [{"url": t["scrapeUrl"], "health": t["health"], "error": t.get("lastError")}
                for t in body["data"]["activeTargets"]]

    def rule_groups(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/rules", timeout=5).json()["data"]["groups"]


class PromQLError(Exception):
    pass


def _config(targets: Iterable[ScrapeTarget], rule_files: Iterable[Path]) -> dict:
    scrape_configs = []
    for target in targets:
        scrape_configs.append({
            "job_name": f"{target.service}/{target.pod}",
            "metrics_path": target.path,
            "static_configs": [{"targets": [target.address],
                                "labels": {"namespace": target.namespace, "service": target.service,
                                           "pod": target.pod}}],
        })
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": scrape_configs,
    }


@contextlib.contextmanager
def prometheus_server(targets: list[ScrapeTarget], workdir: Path,
                      rule_files: Iterable[Path] | None = None) -> Iterator[PrometheusServer]:
    """A real Prometheus on 127.0.0.1, scraping `targets`; stopped (and its TSDB left in workdir) after."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("no prometheus binary: run scripts/fetch_obs_tools.sh")
    rules = list(rule_files) if rule_files is not None else sorted(RULES_DIR.glob("*.yaml"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    # JSON is YAML: no YAML writer needed.
    config_path.write_text(json.dumps(_config(targets, rules), indent=2))
    port = free_port()
    log_file = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h",
         "--log.level=warn"],
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready")
            time.sleep(0.1)
        yield PrometheusServer(url=url, process=process, workdir=workdir, targets=list(targets))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log_file.close()


# ------------------------------------------------------------------ dashboards
@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows keep theirs inside


def dashboard_queries(directory: Path = DASHBOARDS_DIR) -> list[PanelQuery]:
    queries = []
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                queries.append(PanelQuery(path.name, panel["title"], target["refId"], target["expr"]))
    return queries


def expand_variables(expr: str, namespace: str = NAMESPACE, rate_interval: str = "15s") -> str:
    """Grafana's substitutions for our dashboards' variables, as Grafana would send the query."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__interval", "5s")
            .replace("$__range", "1h").replace("${namespace}", namespace).replace("$namespace", namespace))


def _has_number(result: list[dict]) -> bool:
    for series in result:
        value = float(series["value"][1])
        if not math.isnan(value):
            return True
    return False


def run_dashboard_queries(prom: PrometheusServer, queries: list[PanelQuery] | None = None,
                          namespace: str = NAMESPACE, rate_interval: str = "15s") -> dict[str, list[str]]:
    """Each panel query run as an instant query. Returns problems: `errors` (does not parse or
    evaluate), `empty` (no series), `nan` (only NaN values, e.g. a quantile of no traffic).
    `rate_interval` stands for Grafana's $__rate_interval: make it span the test's traffic."""
    problems: dict[str, list[str]] = {"errors": [], "empty": [], "nan": []}
    for query in queries if queries is not None else dashboard_queries():
        expr = expand_variables(query.expr, namespace, rate_interval)
        if "$" in expr:
            problems["errors"].append(f"{query}: unexpanded variable")
            continue
        try:
            result = prom.query(expr)
        except PromQLError as exc:
            problems["errors"].append(f"{query}: {exc}")
            continue
        if not result:
            problems["empty"].append(str(query))
        elif not _has_number(result):
            problems["nan"].append(str(query))
    return problems
