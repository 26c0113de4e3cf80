"""Clients from voicebot_core.redis_client after their Redis restarts (AOF on): the next command works."""

import time

import pytest
import redis

from helpers.redis_server import RedisServer
from voicebot_core.redis_client import connect, connect_sync


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.mark.parametrize("max_connections", [None, 4], ids=["pool", "blocking-pool"])
async def test_an_async_client_reconnects_on_its_first_command_after_a_restart(redis_server, max_connections):
    client = connect(redis_server.url, max_connections=max_connections)
    try:
        await client.set("k", "before")
        async with client.pipeline(transaction=True) as pipe:  # a pooled connection for each kind of call
            pipe.set("p", "1")
            await pipe.execute()
        redis_server.restart()
        assert await client.get("k") == "before"  # kept in the AOF; the dead connection was replaced
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr("p")
            assert await pipe.execute() == [2]
    finally:
        await client.aclose()


def test_a_sync_client_reconnects_after_a_restart(redis_server):
    client = connect_sync(redis_server.url)
    client.set("k", "before")
    redis_server.restart()
    assert client.get("k") == "before"


async def test_with_redis_down_a_command_fails_soon_and_works_once_it_is_back(redis_server):
    client = connect(redis_server.url)
    try:
        await client.ping()
        redis_server.stop()
        began = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            await client.get("k")
        assert time.monotonic() - began < 3  # a few reconnects, not a hang
        redis_server.start()
        assert await client.ping()
    finally:
        await client.aclose()
