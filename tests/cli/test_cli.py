"""`python -m voicebot_cli` against the real dialer API process (and, for campaigns, a Celery
worker and the Twilio emulator)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dialer_helpers import API_KEY, PYTHON, PYTHONPATH, ROOT, CeleryWorkers, start_api, stop

from voicebot_dialer.settings import DialerSettings


@pytest.fixture
def api_url(live_settings: DialerSettings, tmp_path: Path) -> Iterator[str]:
    proc, url = start_api(live_settings, tmp_path / "api.log")
    yield url
    stop(proc)


def voicebot(url: str, *args: str, key: str = API_KEY, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "VOICEBOT_DIALER_URL": url, "VOICEBOT_API_KEY": key}
    return subprocess.run([PYTHON, "-m", "voicebot_cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_dial_and_errors(api_url: str) -> None:
    done = voicebot(api_url, "--json", "dial", "+15551234567", "--agent", "sales", "--var", "name=Sam",
                    "--var", "order_id=A-9", "--window", "UTC,00:00-23:59", "--max-attempts", "2")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["variables"] == {"name": "Sam", "order_id": "A-9"} and job["max_attempts"] == 2
    shown = voicebot(api_url, "calls", "get", job["id"])
    assert shown.returncode == 0 and "job.created" in shown.stdout

    bad = voicebot(api_url, "dial", "555-1234")
    assert bad.returncode == 1 and "E.164" in bad.stderr
    assert voicebot(api_url, "dial", "+15551234567", key="wrong").returncode == 1
    assert voicebot(api_url, "dial", "+15551234567", key="").returncode == 2


def test_campaign_with_progress_and_tail(api_url: str, live_settings: DialerSettings, emulator: str,
                                         celery_workers: CeleryWorkers, tmp_path: Path) -> None:
    tail_env = {**os.environ, "PYTHONPATH": PYTHONPATH, "VOICEBOT_DIALER_URL": api_url, "VOICEBOT_API_KEY": API_KEY}
    tail = subprocess.Popen([PYTHON, "-m", "voicebot_cli", "calls", "tail", "--seconds", "25"], env=tail_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    csv_path = tmp_path / "contacts.csv"
    csv_path.write_text("to,name\n+14155554001,Ann\n+14155554002,Ben\n+14155554003,Cat\n")
    celery_workers.start("w1", live_settings)
    done = voicebot(api_url, "campaign", "create", str(csv_path), "--agent", "sales", "--cps", "5",
                    "--max-concurrent", "2")
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert final["states"] == {"completed": 3}
    assert "3/3" in done.stderr  # the progress bar reached the end
    followed = voicebot(api_url, "dial", "+14155554009", "--agent", "sales", "--var", "name=Dee", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "placed" in followed.stdout and "job.completed" in followed.stdout
    listed = voicebot(api_url, "calls", "list", "--state", "completed")
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 4
    tail.send_signal(signal.SIGINT)
    out, _ = tail.communicate(timeout=20)
    completed_lines = [line for line in out.splitlines() if "job.completed" in line]
    assert len(completed_lines) == 4, out
    assert any("call.status" in line and "call_status=ringing" in line for line in out.splitlines())
