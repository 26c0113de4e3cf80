"""Helpers shared by the dialer tests (imported by name; conftest holds the fixtures)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from voicebot_devstack.processes import PYTHONPATH, ROOT, free_port
from voicebot_dialer.settings import DialerSettings

PYTHON = sys.executable
API_KEY = "test-key-1"


def settings_env(settings: DialerSettings) -> dict[str, str]:
    """The same settings as VOICEBOT_* variables, for subprocesses."""
    env = {}
    for name, value in settings.model_dump().items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"VOICEBOT_{name.upper()}"] = str(int(value) if isinstance(value, bool) else value)
    return env


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def start_api(settings: DialerSettings, log_path: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m voicebot_dialer.api` on `port` (default: a free one); returns it when /readyz answers."""
    port = port or free_port()
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": PYTHONPATH, "VOICEBOT_DIALER_PORT": str(port)}
    log = open(log_path, "a")  # noqa: SIM115 - the process owns it
    proc = subprocess.Popen([PYTHON, "-m", "voicebot_dialer.api"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, log_path.read_text()
            return False

    wait_for(ready, 20, "the dialer API", 0.1)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)



class CeleryWorkers:
    """Real `celery worker` subprocesses; killed (process group) at the end of the test."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, settings: DialerSettings, prefork: int = 0,
              metrics_dir: Path | None = None) -> subprocess.Popen:
        """A solo-pool worker (tasks in the main process), or with `prefork` that many pool
        processes started as the chart and `make up` start them (`python -m voicebot_dialer.worker`,
        prometheus_client multiprocess mode in `metrics_dir`)."""
        env = {**os.environ, **settings_env(settings), "PYTHONPATH": PYTHONPATH}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if prefork:
            command = [PYTHON, "-m", "voicebot_dialer.worker", "--pool=prefork", f"--concurrency={prefork}"]
            if metrics_dir is not None:
                env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        else:
            command = [PYTHON, "-m", "celery", "-A", "voicebot_dialer.celery_app", "worker", "--pool=solo"]
        log = open(self._log_dir / f"celery-{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [*command, "-Q", "dialer", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel=WARNING"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self._log_dir.glob("celery-*.log")))

