"""Long polls outlive idle periods: `voicebot dial --follow` and `voicebot calls tail` keep following
through many empty polls (each longer than the API's Redis socket timeout) and an API restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from dialer_helpers import API_KEY, PYTHON, PYTHONPATH, ROOT, start_api, stop

from voicebot_devstack.processes import free_port
from voicebot_dialer.settings import DialerSettings

# Short cycles so the test takes ~30 s: Redis reads time out after 1 s, a poll waits 3 s on the server.
SOCKET_TIMEOUT_S = 1
POLL_WAIT_S = 3
IDLE_S = 10  # per idle stretch: three polls, each of four blocking reads


def _cli(url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "VOICEBOT_DIALER_URL": url, "VOICEBOT_API_KEY": API_KEY,
           "VOICEBOT_POLL_WAIT_S": str(POLL_WAIT_S)}
    return subprocess.Popen([PYTHON, "-m", "voicebot_cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_follow_and_tail_survive_idle_polls_and_an_api_restart(dialer_settings: DialerSettings,
                                                               tmp_path: Path) -> None:
    settings = dialer_settings.model_copy(
        update={"redis_url": f"{dialer_settings.redis_url}?socket_timeout={SOCKET_TIMEOUT_S}"})
    port = free_port()
    log = tmp_path / "api.log"
    api, url = start_api(settings, log, port)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    tail = follow = None
    try:
        # The server side alone: a poll three times the socket timeout comes back empty, not 500.
        started = time.monotonic()
        idle = httpx.get(f"{url}/v1/events", params={"wait_s": POLL_WAIT_S}, headers=headers, timeout=20)
        assert idle.status_code == 200 and idle.json()["events"] == [], idle.text
        assert time.monotonic() - started >= POLL_WAIT_S - 0.1

        tail = _cli(url, "calls", "tail")
        # No Celery worker runs: the job stays scheduled and the follow sees nothing until it is canceled.
        follow = _cli(url, "dial", "+14155554100", "--agent", "sales", "--follow")
        time.sleep(IDLE_S)
        stop(api)  # the API goes away for a while: both keep retrying
        time.sleep(2 * POLL_WAIT_S)
        api, _ = start_api(settings, log, port)
        time.sleep(IDLE_S)
        assert follow.poll() is None and tail.poll() is None, (follow.communicate(), tail.communicate())

        job_id = httpx.get(f"{url}/v1/calls", headers=headers).json()["items"][0]["id"]
        assert httpx.post(f"{url}/v1/calls/{job_id}/cancel", headers=headers).json()["state"] == "canceled"
        out, err = follow.communicate(timeout=3 * POLL_WAIT_S)
        assert follow.returncode == 1, (out, err)  # the call did not complete: it was canceled
        kinds = [line.split()[2] for line in out.splitlines()[1:]]
        assert kinds == ["job.created", "job.canceled"], out
        assert "retrying" in err and "Traceback" not in err, err
        time.sleep(1)
        tail.send_signal(signal.SIGINT)
        tail_out, tail_err = tail.communicate(timeout=10)
        assert f"{job_id} job.canceled" in tail_out, (tail_out, tail_err)
        polls = [line for line in log.read_text().splitlines() if "GET /v1/events" in line]
        # Every poll the API answered was a 200 (idle ones empty), however long it waited.
        assert len(polls) >= 2 * IDLE_S // POLL_WAIT_S and all(line.endswith(" 200") for line in polls), polls
    finally:
        for proc in (tail, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
        stop(api)
    print(json.dumps({"polls": len(polls)}))
