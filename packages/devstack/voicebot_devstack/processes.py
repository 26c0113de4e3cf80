"""Start, watch and stop the stack's processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[3]


def _source_dirs() -> tuple[str, ...]:
    """The source folders as pyproject.toml lists them (pytest's pythonpath minus its testpaths)."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return tuple(p for p in ini["pythonpath"] if p not in ini.get("testpaths", []))


SOURCE_DIRS = _source_dirs()
PYTHONPATH = os.pathsep.join(str(ROOT / d) for d in SOURCE_DIRS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, detach: bool = False) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=detach,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_healthy(self, timeout: float = 60.0) -> None:
        if not self.health_url:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}); log:\n{self.log_tail()}")
            try:
                if httpx.get(self.health_url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f}s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        if not self.alive():
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start_redis(run_dir: Path, own: bool = False) -> tuple[str, Process | None]:
    """The machine's Redis when one answers on 6379, else our own on a free port. `own`: always our
    own, with its AOF on (in run_dir/redis), so it can be restarted without losing what it acknowledged."""
    default = "redis://127.0.0.1:6379/0"
    if not own and redis_answers(default):
        return default, None
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no Redis on 127.0.0.1:6379 and no redis-server to start (apt-get install redis-server)")
    port = free_port()
    persistence = ["--appendonly", "no"]
    if own:
        (run_dir / "redis").mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--dir", str(run_dir / "redis")]
    proc = Process("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence],
                   {}, run_dir / "logs" / "redis.log").start()
    url = f"redis://127.0.0.1:{port}/0"
    return url, wait_for_redis(url, proc)


def wait_for_redis(url: str, proc: Process) -> Process:
    """`proc` once its Redis answers at `url` (RuntimeError after 10 s, or when it exits)."""
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline or not proc.alive():
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc
