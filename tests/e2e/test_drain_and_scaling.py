"""Drain and scaling with every service its own process: SIGTERM a bot-worker or the gateway in the
middle of a call, and add a worker while the only one is full."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
import redis

from helpers.constants import TEST_PROFILES_PATH
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_devstack.turns import turn_latencies

THREE_TURNS = "+15557000001"


@pytest.fixture
def small_stack(tmp_path, redis_url):
    def start(workers: int, capacity: int) -> Stack:
        stack = Stack(StackConfig(run_dir=tmp_path, workers=workers, worker_capacity=capacity,
                                  profiles_path=TEST_PROFILES_PATH, redis_prefix=f"e2e-drain-{time.time_ns()}"))
        stacks.append(stack.start())
        return stack

    stacks: list[Stack] = []
    yield start
    for stack in stacks:
        stack.stop()


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met in {timeout}s")


class Calls:
    def __init__(self, stack: Stack) -> None:
        self.http = httpx.Client(base_url=stack.urls["emulator"], timeout=120)
        self.r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        self.keys = RedisKeys(stack.config.redis_prefix)

    def place(self, script: str = "three-turns") -> str:
        return self.http.post("/emulator/calls", json={"from": "+15550001111", "to": THREE_TURNS,
                                                        "script": script}).raise_for_status().json()["call_sid"]

    def worker_of(self, sid: str) -> str | None:
        return self.r.hget(self.keys.call(sid), "worker_id")

    def finish(self, sid: str) -> dict:
        self.http.get(f"/emulator/calls/{sid}/wait", params={"timeout": 90})
        return self.http.get(f"/emulator/calls/{sid}").json()


def _assert_whole_conversation(report: dict) -> None:
    assert report["status"] == "completed", report
    assert len(report["said"]) == 3
    assert all(t.latency_s is not None for t in turn_latencies(report)), "every caller turn was answered"
    assert not report.get("error"), report["error"]


def test_sigterm_to_a_worker_drains_it_while_its_call_finishes(small_stack):
    stack = small_stack(workers=2, capacity=2)
    calls = Calls(stack)
    live = calls.place()
    worker_name = _wait(lambda: calls.worker_of(live), what="call attached")
    worker = stack.processes[worker_name]
    worker.popen.send_signal(signal.SIGTERM)
    _wait(lambda: calls.r.hget(calls.keys.worker(worker_name), "draining") == "1", what="draining in registry")
    # the next call goes to the other worker
    second = calls.place()
    other = _wait(lambda: calls.worker_of(second), what="second call attached")
    assert other != worker_name
    _assert_whole_conversation(calls.finish(live))
    assert worker.popen.wait(timeout=30) == 0, "the drained worker exits cleanly once its call ended"
    _assert_whole_conversation(calls.finish(second))


def test_sigterm_to_the_gateway_keeps_open_streams_until_they_end(small_stack):
    stack = small_stack(workers=1, capacity=2)
    calls = Calls(stack)
    live = calls.place()
    _wait(lambda: calls.worker_of(live), what="call attached")
    gateway = stack.processes["gateway"]
    gateway.popen.send_signal(signal.SIGTERM)
    _wait(lambda: httpx.get(f"{stack.urls['gateway']}/readyz").status_code == 503, what="gateway not ready")
    refused = httpx.post(f"{stack.urls['gateway']}/twilio/voice", data={"CallSid": "CA1"})
    assert refused.status_code in (403, 503)  # unsigned here; a signed one gets 503 while draining
    report = calls.finish(live)
    _assert_whole_conversation(report)
    assert not any("1012" in str(e.get("detail")) for e in report["timeline"]), "not closed with 1012"
    assert gateway.popen.wait(timeout=30) == 0


def test_a_new_worker_takes_calls_at_once(small_stack):
    stack = small_stack(workers=1, capacity=1)
    calls = Calls(stack)
    first = calls.place()
    _wait(lambda: calls.worker_of(first), what="first call attached")
    added = stack.add_worker(1, capacity=1)  # returns once it answers /healthz
    second = calls.place()
    assert _wait(lambda: calls.worker_of(second), what="second call attached") == added.name
    _assert_whole_conversation(calls.finish(first))
    _assert_whole_conversation(calls.finish(second))


def test_worker_killed_mid_call_the_conversation_continues_on_another(small_stack):
    stack = small_stack(workers=2, capacity=2)
    calls = Calls(stack)
    sid = calls.place()
    victim = _wait(lambda: calls.worker_of(sid), what="call attached")
    # after the first caller turn has been answered and checkpointed
    _wait(lambda: '"role": "user"' in (calls.r.get(calls.keys.call_context(sid)) or ""), timeout=30,
          what="first turn checkpointed")
    stack.processes[victim].popen.send_signal(signal.SIGKILL)
    killed_at = time.time()
    report = calls.finish(sid)
    _assert_whole_conversation(report)
    events = [json.loads(e) for e in calls.r.lrange(calls.keys.call_events(sid), 0, -1)]
    reattached = [e for e in events if e["kind"] == "reattached"]
    assert reattached and reattached[0]["worker_id"] != victim, events
    assert reattached[0]["at"] - killed_at < 1.0, "re-attached within a second"
