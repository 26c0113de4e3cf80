"""Shared fixtures: a real Redis (the machine's, or one we start), unique key prefixes.

The tests run in development mode (VOICEBOT_DEV_MODE=true, set here for this process and the
services it starts): settings built in them may keep the built-in public development secrets.
Tests of the refusal outside development mode pass their own environment (tests/*/test_*secrets.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from voicebot_core.settings import DEV_MODE_ENV
from voicebot_devstack.processes import free_port

os.environ[DEV_MODE_ENV] = "true"
# Settings built without a storage directory keep recordings and transcripts out of the checkout.
os.environ.setdefault("VOICEBOT_STORAGE_DIR", tempfile.mkdtemp(prefix="voicebot-test-call-data-"))


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """127.0.0.1:6379 when it answers; otherwise a throwaway redis-server on a free port."""
    url = "redis://127.0.0.1:6379/0"
    if _redis_answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if not binary:
        pytest.fail("no Redis on 127.0.0.1:6379 and no redis-server binary to start one (make deps)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(url):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key namespace of our own; deleted after the test."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
