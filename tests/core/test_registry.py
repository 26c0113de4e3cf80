import asyncio
import time

import pytest
import redis

from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry, WorkerRegistryReader


@pytest.fixture
async def registry(redis_url, redis_prefix):
    redis = connect(redis_url)
    yield WorkerRegistry(redis, RedisKeys(redis_prefix), heartbeat_ttl_s=1.0)
    await redis.aclose()


async def test_concurrent_reservations_never_exceed_capacity(registry):
    await registry.register("w1", "ws://w1", capacity=3)
    await registry.register("w2", "ws://w2", capacity=2)
    results = await asyncio.gather(*(registry.reserve(f"CA{i}") for i in range(20)))
    granted = [r for r in results if r is not None]
    assert len(granted) == 5
    assert sum(r.worker_id == "w1" for r in granted) == 3
    assert await registry.free_slots() == 0


async def test_least_loaded_worker_is_picked_and_release_is_idempotent(registry):
    await registry.register("w1", "ws://w1", capacity=4)
    await registry.register("w2", "ws://w2", capacity=4)
    first = await registry.reserve("CA1")
    second = await registry.reserve("CA2")
    assert {first.worker_id, second.worker_id} == {"w1", "w2"}
    await registry.release(first.worker_id, "CA1")
    await registry.release(first.worker_id, "CA1")
    workers = {w.worker_id: w for w in await registry.list_workers()}
    assert workers[first.worker_id].active_calls == 0
    assert workers[second.worker_id].active_calls == 1


async def test_draining_and_skipped_workers_get_no_calls(registry):
    await registry.register("w1", "ws://w1", capacity=4)
    await registry.register("w2", "ws://w2", capacity=4)
    await registry.set_draining("w1")
    assert (await registry.reserve("CA1")).worker_id == "w2"
    assert await registry.reserve("CA2", skip={"w2"}) is None


async def test_same_call_keeps_its_slot_and_preferred_worker_wins(registry):
    await registry.register("w1", "ws://w1", capacity=4)
    await registry.register("w2", "ws://w2", capacity=1)
    assert (await registry.reserve("CA1", preferred_worker_id="w2")).worker_id == "w2"
    assert (await registry.reserve("CA1")).worker_id == "w2"  # re-attach reuses its slot


async def test_worker_without_heartbeat_expires(registry):
    await registry.register("w1", "ws://w1", capacity=2)
    await asyncio.sleep(1.3)
    assert await registry.reserve("CA1") is None
    assert await registry.list_workers() == []
    with pytest.raises(LookupError):
        await registry.heartbeat("w1")


async def test_a_re_registered_worker_holds_its_live_calls_again(registry):
    await registry.register("w1", "ws://w1", capacity=2)
    assert await registry.address("w1") == "ws://w1"
    await registry.register("w1", "ws://w1", capacity=2)  # after its entry expired: slots start empty
    await registry.hold("w1", {"CA1"})
    assert await registry.free_slots() == 1
    assert (await registry.reserve("CA1")).worker_id == "w1"  # the live call keeps its slot
    assert await registry.free_slots() == 1
    assert await registry.address("w-gone") is None


def hold_outbound(redis_url: str, redis_prefix: str, job_id: str, call_sid: str = "", age_s: float = 0.0) -> None:
    """What the dialer's CapacityGate leaves for a placed outbound call: its place in `outbound-active`
    and, once Twilio gave one, the call SID on the dial job."""
    keys = RedisKeys(redis_prefix)
    client = redis.Redis.from_url(redis_url)
    client.zadd(keys.outbound_active(), {job_id: time.time() - age_s})
    client.hset(keys.dial_job(job_id), mapping={"id": job_id, "call_sid": call_sid})


async def test_slots_held_for_outbound_calls_go_to_those_calls_only(registry, redis_url, redis_prefix):
    await registry.register("w1", "ws://w1", capacity=2)
    hold_outbound(redis_url, redis_prefix, "dj1", call_sid="CA-out1")
    hold_outbound(redis_url, redis_prefix, "dj2")  # still placing: no call SID yet
    assert await registry.reserve("CA-in") is None
    assert (await registry.reserve("CA-out1", dial_job_id="dj1")).worker_id == "w1"
    assert await registry.reserve("CA-in") is None  # the last slot is dj2's
    assert (await registry.reserve("CA-out2", dial_job_id="dj2")).worker_id == "w1"


async def test_an_outbound_call_known_by_its_call_sid_may_use_its_hold(registry, redis_url, redis_prefix):
    await registry.register("w1", "ws://w1", capacity=1)
    hold_outbound(redis_url, redis_prefix, "dj1", call_sid="CA-out1")
    assert (await registry.reserve("CA-out1")).worker_id == "w1"


async def test_holds_of_calls_on_a_worker_and_stale_holds_leave_the_other_slots_free(registry, redis_url,
                                                                                  redis_prefix):
    await registry.register("w1", "ws://w1", capacity=2)
    hold_outbound(redis_url, redis_prefix, "dj1", call_sid="CA-out1")
    assert (await registry.reserve("CA-out1", dial_job_id="dj1")).worker_id == "w1"  # on a worker: counted once
    hold_outbound(redis_url, redis_prefix, "dj-lost", age_s=3600)  # its final callback was lost
    assert (await registry.reserve("CA-in")).worker_id == "w1"


async def test_the_blocking_reader_sees_what_the_async_registry_sees(registry, redis_url, redis_prefix):
    before = time.time()
    await registry.register("w1", "ws://w1", capacity=3)
    await registry.register("w2", "ws://w2", capacity=2)
    await registry.set_draining("w2")
    await registry.reserve("CA1")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        read = {w.worker_id: w for w in WorkerRegistryReader(client, RedisKeys(redis_prefix)).list_workers()}
    finally:
        client.close()
    assert read == {w.worker_id: w for w in await registry.list_workers()}
    assert (read["w1"].active_calls, read["w1"].free_slots, read["w2"].free_slots) == (1, 2, 0)
    assert read["w2"].draining and before <= read["w1"].started_at <= read["w1"].last_heartbeat
