"""Start our services for tests: in a thread (uvicorn) or as real subprocesses."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from voicebot_core.settings import DEV_MODE_ENV
from voicebot_devstack.processes import PYTHONPATH, ROOT, free_port

__all__ = ["PYTHONPATH", "ROOT", "Service", "free_port", "python_module", "uvicorn_thread", "wait_http"]


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s: {last}")


@contextlib.contextmanager
def uvicorn_thread(app: object, port: int | None = None, **config_kw: Any) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 in a background thread; yields its http base URL (`config_kw`:
    more uvicorn.Config options, e.g. ssl_certfile and ssl_keyfile, then it is https)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            log_config=None, **config_kw)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if config_kw.get('ssl_certfile') else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Service:
    """A service running as its own process, as in production."""

    def __init__(self, args: list[str], env: dict[str, str], health_url: str, log_path: Path) -> None:
        self.args, self.health_url, self.log_path = args, health_url, log_path
        # development mode (built-in secrets allowed) unless `env` says otherwise
        full_env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1", DEV_MODE_ENV: "true", **env}
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=full_env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> Service:
        try:
            wait_http(self.health_url, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.args} did not become healthy; log:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
