"""A real failover: primary, replica and three Sentinels on loopback, kill -9 of the primary while
our clients write. The registry, the call store, the dial job store and the Celery producer (all
built from settings by voicebot_core.redis_client / dial_status) keep working, no acknowledged
write is missing on the promoted replica, and none of the writes in flight raised."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helpers.redis_sentinel import SentinelSet
from voicebot_core.calls import CallStore
from voicebot_core.dial_status import producer_for
from voicebot_core.redis_client import ReplicaAck, connect, connect_sync
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.settings import CommonSettings
from voicebot_devstack.processes import free_port
from voicebot_dialer.job_store import JobStore

PREFIX = "sentinel-test"


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelSet]:
    # auth on both the data nodes and the Sentinels: the settings must carry each to its place
    with SentinelSet(tmp_path, password="data-pw", sentinel_password="sentinel-pw") as running:
        yield running


def settings_for(topology: SentinelSet, **extra: str) -> CommonSettings:
    env = {k.removeprefix("VOICEBOT_").lower(): v for k, v in topology.env().items()}
    return CommonSettings(**{"dev_mode": True, "redis_prefix": PREFIX, "dialer_broker_prefix": f"{PREFIX}:celery:",
                             "redis_failover_retry_s": "20", **env, **extra})


async def test_mid_call_writes_survive_a_primary_kill(topology: SentinelSet) -> None:
    settings = settings_for(topology)
    keys = RedisKeys(PREFIX)
    redis = connect(settings.redis_target, max_connections=20)
    registry, calls = WorkerRegistry(redis, keys), CallStore(redis, keys)
    await registry.register("w1", "ws://w1", capacity=4)
    assert await registry.reserve("CA1") is not None
    await calls.upsert("CA1", worker_id="w1", status="in-progress")

    acked: list[int] = []
    stop = asyncio.Event()

    async def turns() -> None:  # a call's events, as a bot-worker writes them turn after turn
        n = 0
        while not stop.is_set():
            await calls.add_event("CA1", "turn", n=n)
            acked.append(n)
            n += 1
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(turns())
    await asyncio.sleep(0.3)
    killed_at = time.monotonic()
    old = await asyncio.to_thread(topology.kill_primary)
    new = await asyncio.to_thread(topology.wait_failover, old)
    switched_s = time.monotonic() - killed_at
    before = len(acked)
    await asyncio.sleep(0.5)
    stop.set()
    await writer  # a write that failed through the failover raises here
    assert len(acked) > before, "no write went through after the failover"

    # what a call does after the switch: heartbeat, another reservation, release, its record
    await registry.heartbeat("w1")
    assert (await registry.reserve("CA2")) is not None
    await registry.release("w1", "CA1")
    await calls.upsert("CA1", status="completed")
    assert (await calls.record("CA1")).status == "completed"

    direct = topology.data_client(new)
    stored = [json.loads(e)["n"] for e in direct.lrange(keys.call_events("CA1"), 0, -1)]
    missing = sorted(set(acked) - set(stored))
    assert missing == [], f"acknowledged events lost in the failover ({switched_s:.1f} s): {missing}"
    assert direct.sismember(keys.worker_calls("w1"), "CA2")
    await redis.aclose()


def test_dial_job_store_and_broker_survive_a_primary_kill(topology: SentinelSet) -> None:
    settings = settings_for(topology)
    keys = RedisKeys(PREFIX)
    jobs = JobStore(connect_sync(settings.redis_target), keys)
    job_id, created = jobs.create({"to": "+15550001111", "state": "scheduled"}, due_at=time.time())
    assert created
    producer = producer_for(settings)
    producer.send_task("voicebot_dialer.handle_call_status", kwargs={"n": 0}, queue="dialer")

    old = topology.kill_primary()
    # straight into the switch: the Sentinels still name the dead primary for ~1 s
    jobs.update(job_id, state="placing")
    jobs.add_event(job_id, "placing")
    producer.send_task("voicebot_dialer.handle_call_status", kwargs={"n": 1}, queue="dialer")
    new = topology.wait_failover(old)

    job = jobs.get(job_id)
    assert job is not None and job["state"] == "placing"
    assert [e["kind"] for e in jobs.events(job_id)] == ["placing"]
    with jobs.locked(job_id):
        jobs.update(job_id, state="ringing")
    direct = topology.data_client(new)
    assert direct.hget(keys.dial_job(job_id), "state") == "ringing"
    queued = [json.loads(m)["headers"]["argsrepr"] for m in direct.lrange(f"{PREFIX}:celery:dialer", 0, -1)]
    assert len(queued) == 2, queued  # both tasks, the one published during the switch too


def test_dial_job_writes_wait_for_the_replica(topology: SentinelSet) -> None:
    """With a replica_ack, a dial job write returns once the replica holds it; a replica that does
    not answer in time is counted (the write stands), and without a replica nothing waits."""
    settings = settings_for(topology)
    client = connect_sync(settings.redis_target)
    ack = ReplicaAck(client, timeout_ms=300)
    jobs = JobStore(client, RedisKeys(PREFIX), replica_ack=ack)
    assert ack.replicas() == 1
    job_id, _ = jobs.create({"to": "+15550001111", "state": "scheduled"}, due_at=time.time())
    jobs.update(job_id, state="placing")
    replica = topology.data_client(topology.data_ports[1])
    assert replica.hget(RedisKeys(PREFIX).dial_job(job_id), "state") == "placing"  # already on the replica
    assert ack.unacked == 0

    # a frozen replica (SIGSTOP) cannot acknowledge: the write waits the timeout, then stands
    replica_proc = topology.procs[topology.data_ports[1]]
    replica_proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        jobs.update(job_id, state="ringing")
        waited = time.monotonic() - started
    finally:
        replica_proc.send_signal(signal.SIGCONT)
    assert ack.unacked == 1 and 0.25 < waited < 0.9, waited
    assert jobs.get(job_id)["state"] == "ringing"

    # after a failover the new primary has no replica: writes do not wait
    old = topology.kill_primary()
    topology.wait_failover(old)
    started = time.monotonic()
    jobs.update(job_id, state="in-progress")  # ROLE is looked up again: the unacked write reset its check
    assert ack.replicas() == 0
    started = time.monotonic()
    jobs.update(job_id, state="completed")
    assert time.monotonic() - started < 0.2


def test_a_redis_that_refuses_role_gets_no_wait_and_the_write_stands(tmp_path: Path) -> None:
    # Managed Redis services may disable ROLE: dial job writes must go on, without WAIT.
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
                               "--rename-command", "ROLE", ""], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        ack = ReplicaAck(client, timeout_ms=300)
        with client.pipeline(transaction=False) as pipe:
            pipe.set("job", "placing")
            assert ack.add(pipe) is False
            pipe.execute()
        assert client.get("job") == "placing" and ack.replicas() == 0
    finally:
        server.terminate()
        server.wait(10)


async def test_a_connection_its_retry_closed_reconnects_to_the_promoted_primary(topology: SentinelSet) -> None:
    """A command's retry closes the connection and sends again on it: the reconnect must ask the
    Sentinels, not retry the dead primary's address until the budget runs out."""
    settings = settings_for(topology, redis_failover_retry_s="3")
    client = connect(settings.redis_target)
    assert await client.ping()
    connection = await client.connection_pool.get_connection()
    old = await asyncio.to_thread(topology.kill_primary)
    new = await asyncio.to_thread(topology.wait_failover, old)
    await connection.disconnect()
    await connection.send_command("PING")  # reconnects inside send, as a retried command does
    assert await connection.read_response() == "PONG"
    assert connection.port == new
    await client.connection_pool.release(connection)
    await client.aclose()


def test_a_sync_connection_its_retry_closed_reconnects_to_the_promoted_primary(topology: SentinelSet) -> None:
    settings = settings_for(topology, redis_failover_retry_s="3")
    client = connect_sync(settings.redis_target)
    assert client.ping()
    connection = client.connection_pool.get_connection()
    old = topology.kill_primary()
    new = topology.wait_failover(old)
    connection.disconnect()
    connection.send_command("PING")
    assert connection.read_response() == "PONG"
    assert connection.port == new
    client.connection_pool.release(connection)
