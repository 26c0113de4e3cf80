"""An S3-compatible server for the object-store tests: moto's S3 (`python -m moto.server`) in its own
process on a free port, with one bucket. It speaks the S3 REST API over HTTP with signature checks
off: it stands in for AWS S3 or MinIO, which do not install here."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from voicebot_devstack.processes import free_port

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY


@contextlib.contextmanager
def s3_server(bucket: str = "call-data") -> Iterator[S3Server]:
    from minio import Minio

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the S3 server (moto.server) did not start") from None
                time.sleep(0.2)
        server = S3Server(f"127.0.0.1:{port}", bucket)
        Minio(server.endpoint, ACCESS_KEY, SECRET_KEY, secure=False, region="us-east-1").make_bucket(bucket)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)
