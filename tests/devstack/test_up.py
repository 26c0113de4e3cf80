"""`python -m voicebot_devstack up` (what `make up` runs) serves the dialer worker's /metrics and lists
its URL with the other services: the prefork worker's counters, a placement counted in a pool
process included. Run with --free-ports and its own run dir, Redis prefix and empty .env, so it
never meets a developer's own `make up` in this checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from voicebot_devstack.processes import PYTHONPATH, ROOT


def devstack(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voicebot_devstack", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def up(tmp_path: Path, redis_url: str):
    run_dir = tmp_path / "run"
    env_file = tmp_path / ".env"
    env_file.write_text("")  # not the repository's .env: the emulator and a throwaway account
    prefix = f"devstack-up-{uuid.uuid4().hex[:8]}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("VOICEBOT_", "TWILIO_", "PROMETHEUS_"))},
           "PYTHONPATH": PYTHONPATH, "VOICEBOT_REDIS_PREFIX": prefix,
           "VOICEBOT_DIALER_BROKER_PREFIX": f"{prefix}:celery:"}
    started = devstack("up", "--no-llm", "--free-ports", "--run-dir", str(run_dir), "--env-file", str(env_file),
                       env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield started.stdout, json.loads((run_dir / "stack.json").read_text())
    finally:
        stopped = devstack("down", "--run-dir", str(run_dir), env=env, timeout=120)
        print(started.stdout, started.stderr, stopped.stdout, stopped.stderr)
        for log in sorted((run_dir / "logs").glob("dialer-*.log")):
            print(log.name, log.read_text()[-3000:])


def test_up_serves_the_dialer_workers_metrics(up) -> None:
    printed, state = up
    url = state["urls"]["dialer-worker-metrics"]
    assert re.search(rf"^\s+dialer-worker-metrics\s+{re.escape(url)}$", printed, flags=re.M), printed
    text = httpx.get(f"{url}/metrics", timeout=5).text
    assert 'voicebot_dial_placements_total{result="placed"} 0.0' in text
    assert 'voicebot_dial_retries_total{reason="busy"} 0.0' in text
    assert 'voicebot_dial_queue_depth{state="scheduled"}' in text

    # A dial job: placed by a prefork pool process, counted on the main process's port.
    response = httpx.post(f"{state['urls']['dialer']}/v1/calls", timeout=10,
                          headers={"Authorization": f"Bearer {state['api_key']}"},
                          json={"to": "+15557000006", "agent_profile": "sales", "machine_detection": "none"})
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 30
    while 'voicebot_dial_placements_total{result="placed"} 1.0' not in text:
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
        text = httpx.get(f"{url}/metrics", timeout=5).text
