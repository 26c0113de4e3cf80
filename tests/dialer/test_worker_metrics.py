"""The dialer worker's /metrics under the prefork pool, as the chart and `make up` run it: a real
`python -m voicebot_dialer.worker --pool=prefork --concurrency=2` places a call through the Twilio
emulator in a pool process, and the main process's metrics port serves that process's counter
(prometheus_client multiprocess mode)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dialer_helpers import API_KEY, CeleryWorkers, wait_for
from fastapi.testclient import TestClient
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from voicebot_devstack.processes import PYTHONPATH, free_port
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.settings import DialerSettings

NUMBER = "+14155550701"
PLACED = 'voicebot_dial_placements_total{result="placed"}'


@pytest.fixture
def live_api(live_settings: DialerSettings) -> Iterator[TestClient]:
    with TestClient(build_asgi_app(live_settings)) as client:
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        yield client


def sample(text: str, series: str) -> float | None:
    """The value of one series in a /metrics page, None when it is not there."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, flags=re.M)
    return float(match.group(1)) if match else None


def counter_files(metrics_dir: Path) -> dict[int, dict[str, float]]:
    """pid -> {series: value} of the counters each process wrote to the multiprocess directory."""
    found: dict[int, dict[str, float]] = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = {}
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            values[name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"] = value
        found[int(path.stem.split("_")[-1])] = values
    return found


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_prefork_pool_processes_counters_reach_the_metrics_port(
        live_api: TestClient, live_settings: DialerSettings, emulator: str, celery_workers: CeleryWorkers,
        tmp_path: Path) -> None:
    httpx.post(f"{emulator}/emulator/numbers", json={NUMBER: {"answer": "human"}}, timeout=5).raise_for_status()
    metrics_dir = tmp_path / "prometheus-multiproc"
    metrics_dir.mkdir()
    # A file an earlier run left (a restarted container keeps its emptyDir): the worker empties
    # the directory at start, so these 5 placements are not summed into this run's.
    stale = MmapedDict(str(metrics_dir / "counter_4000000.db"))
    stale.write_value(mmap_key("voicebot_dial_placements", "voicebot_dial_placements_total", ["result"], ["placed"],
                               "Calls placed through the Twilio REST API."), 5.0, 0.0)
    stale.close()
    port = free_port()
    worker = celery_workers.start("prefork", live_settings.model_copy(update={"dialer_metrics_port": port}),
                                  prefork=2, metrics_dir=metrics_dir)
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str | None:
        try:
            return httpx.get(url, timeout=2).text
        except httpx.HTTPError:
            assert worker.poll() is None, celery_workers.logs()
            return None

    before = wait_for(scrape, 30, "the worker's metrics port")
    assert sample(before, PLACED) == 0.0, before  # the stale file is gone, the series exists at 0
    assert not (metrics_dir / "counter_4000000.db").exists()

    job = live_api.post("/v1/calls", json={"to": NUMBER, "agent_profile": "sales",
                                           "variables": {"name": "Sam", "order_id": "A-7"}}).json()
    done = wait_for(lambda: (j := live_api.get(f"/v1/calls/{job['id']}").json())["terminal"] and j, 30,
                    "the dial job to finish", 0.1)
    assert (done["state"], done["outcome"]) == ("completed", "completed"), (done, celery_workers.logs())

    text = wait_for(lambda: (t := scrape()) and sample(t, PLACED) == 1.0 and t, 10, "placed = 1 on /metrics")
    # The placement was counted in a pool process, a child of the worker's main process (which
    # serves the port): its file in the directory holds the 1.
    counted = [pid for pid, values in counter_files(metrics_dir).items() if values.get(PLACED) == 1.0]
    assert len(counted) == 1 and counted[0] != worker.pid, counter_files(metrics_dir)
    assert parent_pid(counted[0]) == worker.pid
    # Label values never used: their series are there, at 0.
    assert sample(text, 'voicebot_dial_placements_total{result="unreachable"}') == 0.0
    assert sample(text, 'voicebot_dial_retries_total{reason="placement-lost"}') == 0.0
    assert sample(text, 'voicebot_call_outcomes_total{direction="outbound",outcome="busy"}') == 0.0
    assert sample(text, 'voicebot_dial_jobs_total{source="campaign"}') == 0.0
    # Gauges are combined across the processes (multiprocess_mode), never one series per pid; the
    # queue gauges are the dispatcher's (main process) values.
    assert sample(text, 'voicebot_dial_queue_depth{state="scheduled"}') == 0.0
    assert 'pid="' not in text

    # Warm shutdown: each pool process's exit (worker_process_shutdown) removes its live gauges.
    children = [pid for pid in counter_files(metrics_dir) if pid != worker.pid]
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    time.sleep(0.2)
    left = {p.name for p in metrics_dir.glob("gauge_live*.db")}
    assert not [name for name in left for pid in children if name.endswith(f"_{pid}.db")], left


def test_the_entry_point_empties_the_directory_or_makes_a_private_one(tmp_path: Path) -> None:
    """Before prometheus_client is imported: the configured directory emptied of metric files (the
    directory itself kept, it may be a mount point), or without one a private directory, named in
    the environment and removed at exit."""
    configured = tmp_path / "multiproc"
    configured.mkdir()
    (configured / "counter_123.db").write_bytes(b"stale")
    (configured / "gauge_livesum_123.db").write_bytes(b"stale")
    code = ("import os, sys; from voicebot_dialer.worker import prepare_metrics_dir; "
            "path = prepare_metrics_dir(); import prometheus_client.values as v; "
            "print(path, os.environ['PROMETHEUS_MULTIPROC_DIR'], os.path.isdir(path), v.ValueClass.__name__)")
    for environ in ({"PROMETHEUS_MULTIPROC_DIR": str(configured)}, {}):
        out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": PYTHONPATH, **environ},
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert out[0] == out[1] and out[2:] == ["True", "MmapedValue"], out
        if environ:
            assert out[0] == str(configured) and configured.is_dir() and list(configured.iterdir()) == []
        else:
            assert out[0] != str(configured) and not Path(out[0]).exists()  # removed at exit
