"""A call that ends while Redis is down stores its end (transcript, outcome, end time, slot) once Redis is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from helpers.constants import SHIPPED_PROFILES_PATH as PROFILES_PATH
from helpers.redis_server import RedisServer
from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallStore
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_core.profiles import AgentProfiles
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.twilio_protocol import StreamStart
from voicebot_worker.call_record import CallRecordWriter
from voicebot_worker.call_setup import CallSetup
from voicebot_worker.settings import WorkerSettings

CALL = "CA" + "e" * 32


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


async def test_the_end_of_a_call_is_stored_once_redis_is_back(redis_server, tmp_path):
    redis = connect(redis_server.url)
    keys = RedisKeys("test")
    store, registry = CallStore(redis, keys), WorkerRegistry(redis, keys)
    settings = WorkerSettings(worker_id="w1", redis_url=redis_server.url, worker_call_end_retry_s=30)
    start = StreamStart(stream_sid="MZ1", call_sid=CALL, account_sid="AC1", tracks=["inbound"],
                        custom_parameters={"direction": "inbound"})
    setup = CallSetup(start=start, direction="inbound", profile=AgentProfiles.load(PROFILES_PATH).get(None))
    writer = CallRecordWriter(setup, settings, store, registry, CallMedia(FilesystemObjectStore(tmp_path / "media")))
    try:
        await registry.register("w1", "ws://127.0.0.1:9", capacity=2)
        assert await registry.reserve(CALL) is not None
        await writer.attached()
        writer.user_turn_started()
        writer.user_said("I would like to check my order status")
        await asyncio.to_thread(redis_server.stop)
        ended_at = time.time()
        ending = asyncio.create_task(writer.ended("completed", "caller_hung_up", [], None))
        await asyncio.sleep(1.5)
        assert not ending.done()  # waiting for Redis, not given up
        await asyncio.to_thread(redis_server.start)
        await asyncio.wait_for(ending, 15)
        record = await store.record(CALL)
        assert record is not None and record.outcome == "completed"
        assert abs(float(record.ended_at) - ended_at) < 1.0  # when the call ended, not when Redis came back
        assert [t["text"] for t in await store.transcript(CALL)] == ["I would like to check my order status"]
        assert "worker_call_ended" in [e["kind"] for e in await store.events(CALL)]
        assert await redis.smembers(keys.worker_calls("w1")) == set()  # the slot is free again
    finally:
        await redis.aclose()
