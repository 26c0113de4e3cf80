"""A `StubWorker` in a process of its own, for tests that freeze it (SIGSTOP) as a hung node would be.

`python -m helpers.stub_worker_process WORKER_ID PORT` serves until killed; `stub_worker_process`
starts one and stops it (resumed first, should the test have left it stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from helpers.servers import PYTHONPATH, ROOT, free_port
from helpers.stub_worker import StubWorker

READY = "ready"


@dataclass
class WorkerProcess:
    pid: int
    address: str  # ws://host:port, as a worker registers it


@contextlib.contextmanager
def stub_worker_process(worker_id: str) -> Iterator[WorkerProcess]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([PYTHONPATH, str(ROOT / "tests")])}
    proc = subprocess.Popen([sys.executable, "-m", "helpers.stub_worker_process", worker_id, str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        if line != READY:
            raise RuntimeError(f"stub worker process did not start (exit code {proc.poll()}, said {line!r})")
        yield WorkerProcess(proc.pid, f"ws://127.0.0.1:{port}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


async def _serve(worker_id: str, port: int) -> None:
    worker = StubWorker(worker_id)
    worker.port = port
    async with worker:
        print(READY, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], int(sys.argv[2])))
