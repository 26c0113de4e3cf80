"""A real Redis Sentinel topology on loopback: a primary, a replica (`--replicaof`) and three Sentinels
(quorum 2), each a redis-server process on a free port. Tests and the fault bench
(bench/faults_sentinel.py) start it, kill -9 the primary and wait for the Sentinels to promote the
replica.

    with SentinelSet(Path(tmp)) as topology:
        env = topology.env()          # VOICEBOT_REDIS_URL / _SENTINELS / _SENTINEL_MASTER (/ _PASSWORD)
        topology.kill_primary()
        topology.wait_failover()      # the replica's address once the Sentinels name it
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis

MASTER = "voicebot-primary"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SentinelSet:
    """Primary + replica + 3 Sentinels. `down_after_ms`: how long the primary must not answer before a
    Sentinel calls it down (then 2 agree, elect a leader, promote the replica: ~1-3 s in all at 1000).
    `password`: requirepass/masterauth of the data nodes; `sentinel_password`: the Sentinels' own."""

    def __init__(self, run_dir: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 3000,
                 password: str = "", sentinel_password: str = "", master: str = MASTER) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("no redis-server binary (make deps)")
        self.binary = binary
        self.run_dir = run_dir
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.sentinel_password = sentinel_password
        self.master = master
        self.data_ports = [free_port(), free_port()]  # [0] starts as primary, [1] as its replica
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen] = {}

    # ------------------------------------------------------------ start / stop
    def start(self) -> SentinelSet:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            primary, replica = self.data_ports
            self._start_data(primary)
            self._start_data(replica, replica_of=primary)
            self._wait(lambda: self._client(replica).info("replication").get("master_link_status") == "up", 15,
                       "replica never synced with the primary")
            for port in self.sentinel_ports:
                self._start_sentinel(port, primary)
            self._wait(self._sentinels_see_everyone, 20, "sentinels never found the replica and each other")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> SentinelSet:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _data_args(self, port: int) -> list[str]:
        args = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.run_dir), "--dbfilename", f"dump-{port}.rdb",
                "--logfile", str(self.run_dir / f"redis-{port}.log")]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args

    def _start_data(self, port: int, replica_of: int | None = None) -> None:
        args = self._data_args(port)
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: self._answers(port), 10, f"redis-server on {port} did not start")

    def _start_sentinel(self, port: int, primary: int) -> None:
        lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.run_dir}",
                 f"logfile {self.run_dir / f'sentinel-{port}.log'}",
                 f"sentinel monitor {self.master} 127.0.0.1 {primary} 2",
                 f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
                 f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}",
                 f"sentinel parallel-syncs {self.master} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {self.master} {self.password}")
        if self.sentinel_password:
            lines += [f"requirepass {self.sentinel_password}", f"sentinel sentinel-pass {self.sentinel_password}"]
        conf = self.run_dir / f"sentinel-{port}.conf"  # each its own: a Sentinel rewrites its file
        conf.write_text("\n".join(lines) + "\n")
        self.procs[port] = subprocess.Popen([self.binary, str(conf), "--sentinel"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: self._answers(port, sentinel=True), 10, f"sentinel on {port} did not start")

    # ------------------------------------------------------------ state
    def _client(self, port: int, sentinel: bool = False) -> redis.Redis:
        password = (self.sentinel_password if sentinel else self.password) or None
        return redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True,
                           socket_connect_timeout=0.5, socket_timeout=2)

    def _answers(self, port: int, sentinel: bool = False) -> bool:
        try:
            return bool(self._client(port, sentinel).ping())
        except redis.RedisError:
            return False

    def _sentinels_see_everyone(self) -> bool:
        for port in self.sentinel_ports:
            try:
                state = self._client(port, sentinel=True).sentinel_master(self.master)
            except redis.RedisError:
                return False
            if int(state.get("num-slaves", 0)) < 1 or int(state.get("num-other-sentinels", 0)) < 2:
                return False
        return True

    def primary_port(self) -> int | None:
        """The primary's port as the Sentinels name it now (the first Sentinel that answers)."""
        for port in self.sentinel_ports:
            try:
                _, primary = self._client(port, sentinel=True).sentinel_get_master_addr_by_name(self.master)
                return int(primary)
            except (redis.RedisError, TypeError):
                continue
        return None

    def data_client(self, port: int) -> redis.Redis:
        """A direct client of one data node (checks in tests; services go through the Sentinels)."""
        return self._client(port)

    # ------------------------------------------------------------ faults
    def kill_primary(self) -> int:
        """kill -9 of the current primary; its port."""
        port = self.primary_port()
        assert port is not None, "no Sentinel names a primary"
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(5)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30) -> int:
        """The new primary's port once every Sentinel names it and it accepts writes."""
        def switched() -> int | None:
            ports = set()
            for port in self.sentinel_ports:
                try:
                    ports.add(int(self._client(port, sentinel=True).sentinel_get_master_addr_by_name(self.master)[1]))
                except (redis.RedisError, TypeError):
                    return None
            if len(ports) != 1 or old_port in ports:
                return None
            new = ports.pop()
            role = self._client(new).info("replication").get("role")
            return new if role == "master" else None

        return self._wait(switched, timeout, f"no failover from {old_port} within {timeout} s")

    def restart(self, port: int) -> None:
        """Bring a killed data node back (the Sentinels turn it into a replica of the new primary)."""
        self._start_data(port)

    # ------------------------------------------------------------ for the services
    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        """The services' Redis variables for this topology (VOICEBOT_REDIS_URL: auth and db only)."""
        auth = f":{self.password}@" if self.password else ""
        env = {"VOICEBOT_REDIS_URL": f"redis://{auth}sentinel-managed/0", "VOICEBOT_REDIS_SENTINELS": self.sentinels,
               "VOICEBOT_REDIS_SENTINEL_MASTER": self.master}
        if self.sentinel_password:
            env["VOICEBOT_REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    @staticmethod
    def _wait(predicate: Callable[[], T], timeout: float, message: str) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(message)
