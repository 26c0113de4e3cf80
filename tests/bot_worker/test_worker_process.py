"""`python -m voicebot_worker` as its own process: env settings, registry, SIGTERM drain, exit 0."""

from __future__ import annotations

import asyncio
import signal
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from test_worker_stream import open_call

from helpers.constants import TEST_PROFILES_PATH as PROFILES_PATH
from helpers.constants import WORKER_TICKET_SECRET as TICKET_SECRET
from helpers.servers import Service, free_port, python_module
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry

pytestmark = pytest.mark.slow


async def test_sigterm_drains_live_calls_then_exits(redis_url, redis_prefix, tmp_path):
    port = free_port()
    worker_id = f"proc-{uuid.uuid4().hex[:6]}"
    env = {
        "VOICEBOT_REDIS_URL": redis_url, "VOICEBOT_REDIS_PREFIX": redis_prefix, "VOICEBOT_WORKER_ID": worker_id,
        "VOICEBOT_WORKER_PORT": str(port), "VOICEBOT_WORKER_CAPACITY": "2",
        "VOICEBOT_STREAM_TICKET_SECRET": TICKET_SECRET,
        "VOICEBOT_AGENT_PROFILES_PATH": str(PROFILES_PATH), "VOICEBOT_STORAGE_DIR": str(tmp_path),
        "VOICEBOT_WORKER_DRAIN_TIMEOUT_S": "30", "VOICEBOT_LOG_LEVEL": "INFO",
    }
    http = f"http://127.0.0.1:{port}"
    service = Service(python_module("voicebot_worker"), env, f"{http}/healthz", tmp_path / "worker.log")
    service.wait_ready(60)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    registry = WorkerRegistry(redis, RedisKeys(redis_prefix))

    class Settings:  # what open_call needs to mint a ticket
        pass

    settings = Settings()
    settings.worker_id = worker_id
    try:
        assert worker_id in {w.worker_id for w in await registry.list_workers()}
        peer = await open_call(f"ws://127.0.0.1:{port}", settings, "fake-three-turns")
        await peer.wait_for(lambda: peer.log.events("media"), timeout=20)
        service.signal(signal.SIGTERM)
        async with httpx.AsyncClient() as client:
            for _ in range(50):
                if (await client.get(f"{http}/readyz")).status_code == 503:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get(f"{http}/readyz")).status_code == 503
        [info] = [w for w in await registry.list_workers() if w.worker_id == worker_id]
        assert info.draining
        refused = await open_call(f"ws://127.0.0.1:{port}", settings, "fake-three-turns")
        await asyncio.wait_for(refused.closed.wait(), 5)
        assert refused.log.close_code == 1013 and "draining" in refused.log.close_reason
        await refused.close()
        await asyncio.sleep(0.5)
        assert service.proc.poll() is None, "the worker must wait for its live call"
        assert not peer.closed.is_set()
        await peer.close()  # the call ends: the worker may now exit
        for _ in range(100):
            if service.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert service.proc.returncode == 0, service.log_tail()
        assert worker_id not in {w.worker_id for w in await registry.list_workers()}
    finally:
        service.stop()
        await redis.aclose()
