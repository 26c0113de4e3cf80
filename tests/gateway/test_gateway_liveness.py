"""A gateway killed outright (kill -9) says nothing: the calls it relayed are marked failed within
seconds by another gateway, from the dead one's silence in Redis (voicebot_gateway.liveness); a call
on the surviving gateway goes on. A gateway that exits cleanly leaves the set: nothing is marked; one
taken for dead while alive puts its streams back."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from gateway.gateway_process import gateway_process
from gateway.twilio_frames import media, start_call

from helpers.servers import Service
from helpers.stub_worker import StubWorker
from voicebot_core.calls import CallStore
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_gateway.liveness import GatewayLiveness
from voicebot_gateway.settings import GatewaySettings

LOST = "CA" + "1" * 32  # on the gateway that is killed
KEPT = "CA" + "2" * 32  # on the one that survives
TIMEOUT_S = GatewaySettings.model_fields["gateway_liveness_timeout_s"].default  # the shipped default


@pytest.fixture
def victim(tmp_path: Path, redis_url: str, redis_prefix: str, profiles_path: Path) -> Iterator[tuple[str, Service]]:
    """A second gateway, a process of its own (so it can be killed): its URL and process."""
    with gateway_process(tmp_path / "victim-gateway.log", redis_url, redis_prefix, profiles_path) as victim:
        yield victim


async def _until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _echoed(ws) -> bool:
    await ws.send(media(1))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"


async def test_a_killed_gateways_calls_are_marked_failed_within_seconds(gateway, victim, signer, registry, redis_url,
                                                                       redis_prefix):
    victim_url, victim_process = victim
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=4)
        lost = await start_call(victim_url, signer, call_sid=LOST)
        kept = await start_call(gateway, signer, call_sid=KEPT)
        assert await _echoed(lost) and await _echoed(kept)
        victim_calls = f"{keys.prefix}:gateway:*-{victim_process.proc.pid}-*:calls"
        assert await _until(lambda: any(LOST in r.smembers(k) for k in r.scan_iter(victim_calls)), 5), \
            "the victim's stream is in its set in Redis"

        victim_process.signal(signal.SIGKILL)
        killed_at = time.time()
        assert await _until(lambda: r.hget(keys.call(LOST), "outcome") == "failed", TIMEOUT_S * 2 + 2), \
            victim_process.log_tail()

        record = r.hgetall(keys.call(LOST))
        assert record["outcome_reason"] == "gateway lost"
        assert float(record["ended_at"]) >= killed_at - 1
        lost_events = [json.loads(e) for e in r.lrange(keys.call_events(LOST), 0, -1)]
        gone = [e for e in lost_events if e["kind"] == "gateway-lost"]
        assert len(gone) == 1 and gone[0]["at"] - killed_at < TIMEOUT_S * 2
        assert LOST not in r.smembers(keys.worker_calls("w1")), "the dead gateway's slot is freed"

        # the survivor's call is untouched and still relayed
        assert await _echoed(kept)
        assert r.hget(keys.call(KEPT), "outcome") in (None, "")
        assert not [e for e in r.lrange(keys.call_events(KEPT), 0, -1) if "gateway-lost" in e]
        await kept.close()
        await lost.close()
    r.close()


async def test_a_gateway_that_exits_cleanly_leaves_the_set(gateway, victim, redis_url, redis_prefix):
    _, victim_process = victim
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    mine = f"-{victim_process.proc.pid}-"
    assert await _until(lambda: any(mine in g for g in r.zrange(keys.gateways(), 0, -1)), 5)
    victim_process.signal(signal.SIGTERM)
    assert victim_process.proc.wait(20) == 0
    assert not any(mine in g for g in r.zrange(keys.gateways(), 0, -1))
    r.close()


async def test_a_gateway_taken_for_dead_puts_its_live_streams_back(redis_url, redis_prefix):
    """A gateway silent past the timeout (a stalled loop) has its calls marked failed; when it beats again
    its live streams go back in its set, so a real death later is still noticed."""
    client = connect(redis_url)
    keys = RedisKeys(redis_prefix)
    calls, registry = CallStore(client, keys), WorkerRegistry(client, keys)
    stalled = GatewayLiveness(client, keys, calls, registry, TIMEOUT_S, gateway_id="stalled")
    sweeper = GatewayLiveness(client, keys, calls, registry, TIMEOUT_S, gateway_id="sweeper")
    stalled.opened(LOST)
    await stalled.beat()
    await sweeper.beat()
    assert await sweeper.sweep() == 0, "a gateway that beat just now is alive"
    await client.zadd(keys.gateways(), {"stalled": time.time() - TIMEOUT_S - 1})  # its beat, that long ago
    assert await sweeper.sweep() == 1
    assert (await calls.record(LOST)).outcome == "failed"
    assert await client.smembers(keys.gateway_calls("stalled")) == set()
    await stalled.beat()
    assert await client.smembers(keys.gateway_calls("stalled")) == {LOST}
    await client.aclose()
