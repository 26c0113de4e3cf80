"""Job state changes from status callbacks (repeated, reordered, late) and the capacity gate."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_devstack.processes import free_port
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings


@pytest.fixture
def dialer(dialer_settings: DialerSettings) -> DialerService:
    return DialerService(dialer_settings)


def new_job(api: TestClient, **extra: object) -> str:
    body = {"to": "+14155550123", "agent_profile": "sales", "max_attempts": 2,
            "retry": {"initial_delay_s": 30, "multiplier": 2, "max_delay_s": 60}, **extra}
    response = api.post("/v1/calls", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def status(dialer: DialerService, job_id: str, attempt: int, call_status: str, sid: str = "CA1", **extra: str) -> str:
    return dialer.handle_callback(job_id, attempt, "status", {"CallSid": sid, "CallStatus": call_status, **extra})


def test_reordered_and_repeated_callbacks(api: TestClient, dialer: DialerService) -> None:
    job_id = new_job(api)
    dialer.store.update(job_id, state="placing")
    assert status(dialer, job_id, 1, "in-progress") == "applied"
    assert dialer.store.get(job_id)["state"] == "in-progress"
    assert status(dialer, job_id, 1, "ringing") == "applied"  # late: must not move the job back
    assert dialer.store.get(job_id)["state"] == "in-progress"
    assert status(dialer, job_id, 1, "completed", CallDuration="12") == "applied"
    assert status(dialer, job_id, 1, "completed", CallDuration="12") == "duplicate"
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"], job["call_sid"]) == ("completed", "completed", "CA1")
    assert status(dialer, job_id, 1, "busy", sid="CA1") == "applied"  # after the end: recorded only
    assert dialer.store.get(job_id)["state"] == "completed"
    kinds = [e["kind"] for e in dialer.store.events(job_id)]
    assert kinds.count("job.completed") == 1


def test_busy_retries_with_backoff_then_fails(api: TestClient, dialer: DialerService) -> None:
    job_id = new_job(api)
    dialer.store.update(job_id, state="placing")
    before = time.time()
    status(dialer, job_id, 1, "busy")
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"]) == ("scheduled", 2)
    due = dialer.redis.zscore(dialer.keys.dial_schedule(), job_id)
    assert before + 29 <= due <= time.time() + 31
    assert job["attempts"][0]["result"] == "busy"
    assert status(dialer, job_id, 1, "no-answer", sid="CA1") == "applied"  # stale attempt: ignored
    assert dialer.store.get(job_id)["attempt"] == 2
    dialer.store.update(job_id, state="placing")
    status(dialer, job_id, 2, "no-answer", sid="CA2")
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"]) == ("failed", "no-answer")
    assert dialer.redis.zscore(dialer.keys.dial_schedule(), job_id) is None
    assert [a["result"] for a in job["attempts"]] == ["busy", "no-answer"]


def test_machine_answer_is_its_own_outcome(api: TestClient, dialer: DialerService) -> None:
    job_id = new_job(api)
    dialer.store.update(job_id, state="placing")
    status(dialer, job_id, 1, "in-progress", AnsweredBy="machine_end_beep")
    status(dialer, job_id, 1, "completed", AnsweredBy="machine_end_beep")
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"], job["answered_by"]) == ("completed", "machine", "machine_end_beep")


def test_retry_waits_for_calling_window(api: TestClient, dialer: DialerService) -> None:
    now = time.gmtime()
    # A one-hour window that opened two hours ago today (UTC): the retry waits for tomorrow.
    start = (now.tm_hour - 2) % 24
    window = {"timezone": "UTC", "start": f"{start:02d}:00", "end": f"{start:02d}:59"}
    job_id = new_job(api, calling_window=window)
    due = dialer.redis.zscore(dialer.keys.dial_schedule(), job_id)
    assert due > time.time() + 3600 * 19  # first attempt already waits for the next window
    dialer.store.update(job_id, state="placing")
    status(dialer, job_id, 1, "failed")
    assert dialer.redis.zscore(dialer.keys.dial_schedule(), job_id) > time.time() + 3600 * 19


def test_capacity_counts_ringing_calls_against_free_slots(dialer_settings: DialerSettings) -> None:
    settings = dialer_settings.model_copy(update={"dialer_require_capacity": True})
    dialer = DialerService(settings)
    keys = RedisKeys(prefix=settings.redis_prefix)

    async def register(worker_id: str, capacity: int) -> None:
        client = connect(settings.redis_url)
        await WorkerRegistry(client, keys, heartbeat_ttl_s=60).register(worker_id, "127.0.0.1:1", capacity)
        await client.aclose()

    gate = dialer.capacity
    assert not gate.has_worker_room()
    assert gate.reserve("jobA", time.time()) == 0  # no worker at all
    asyncio.run(register("w1", 2))
    assert gate.reserve("jobA", time.time()) == 1
    assert gate.reserve("jobA", time.time()) == 1  # idempotent
    assert gate.reserve("jobB", time.time()) == 1
    assert gate.reserve("jobC", time.time()) == 0  # two ringing calls fill two free slots
    assert not gate.has_worker_room()
    # jobA is answered and its stream holds a worker slot: still only one slot left, taken by jobB.
    dialer.store.update("jobA", call_sid="CA-A")
    dialer.redis.sadd(keys.worker_calls("w1"), "CA-A")
    assert gate.reserve("jobC", time.time()) == 0
    gate.release("jobB")
    assert gate.has_worker_room()
    assert gate.reserve("jobC", time.time()) == 1
    # A draining worker offers nothing.
    dialer.redis.hset(keys.worker("w1"), "draining", 1)
    gate.release("jobC")
    assert gate.reserve("jobC", time.time()) == 0
    # Campaign concurrency cap.
    dialer.redis.hset(keys.worker("w1"), "draining", 0)
    asyncio.run(register("w2", 10))
    assert gate.reserve("c1", time.time(), "cmp", 2) == 1
    assert gate.reserve("c2", time.time(), "cmp", 2) == 1
    assert gate.reserve("c3", time.time(), "cmp", 2) == -1


def test_unreachable_twilio_ends_the_attempt_without_a_call(api: TestClient,
                                                           dialer_settings: DialerSettings) -> None:
    settings = dialer_settings.model_copy(update={"twilio_api_base_url": f"http://127.0.0.1:{free_port()}"})
    dialer = DialerService(settings)
    job_id = new_job(api, retry={"initial_delay_s": 0, "multiplier": 1, "max_delay_s": 0})
    results: list[str] = []

    def place_now(dial_job_id: str, attempt: int, token: str) -> None:
        results.append(dialer.place(dial_job_id, attempt, token))

    assert dialer.dispatch_due(place_now) == 1
    time.sleep(0.01)
    assert dialer.dispatch_due(place_now) == 1  # the retry is due at once
    assert results == ["unreachable", "unreachable"]
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"], job["attempt"]) == ("failed", "placement-error", 2)
    assert dialer.redis.zcard(dialer.keys.dial_placing()) == 0
    assert dialer.redis.zcard(dialer.keys.dial_dispatched()) == 0
    assert dialer.capacity.outbound_active() == 0
    # Repeating a placement task (a redelivered message) does nothing.
    assert dialer.place(job_id, 2, job["dispatch_token"]) == "stale"
