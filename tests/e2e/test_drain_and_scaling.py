"""Drain and scaling with every service its own process: SIGTERM a bot-worker or the gateway in the
middle of a call, add a worker while the only one is full, SIGKILL a worker mid-call (the call and
its recording go on)."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
import redis

from helpers.constants import TEST_PROFILES_PATH
from voicebot_core.call_media import CallMedia, decode_wav
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_devstack.turns import turn_latencies
from voicebot_worker.settings import WorkerSettings

THREE_TURNS = "+15557000001"
SEGMENT_S = WorkerSettings.model_fields["worker_recording_segment_s"].default  # the shipped default


@pytest.fixture
def small_stack(tmp_path, redis_url):
    def start(workers: int, capacity: int, dialer: bool = False) -> Stack:
        stack = Stack(StackConfig(run_dir=tmp_path, workers=workers, worker_capacity=capacity, dialer=dialer,
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

    def place(self, script: str | dict = "three-turns") -> str:
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
    # the transcript keeps the turn the killed worker answered (checkpointed with the context)
    transcript = json.loads(_wait(lambda: calls.r.get(calls.keys.call_transcript(sid)), what="transcript"))
    user_turns = [t["text"] for t in transcript if t["role"] == "user"]
    assert user_turns[0] == "I would like to check my order status", transcript
    assert user_turns[-1] == "thank you, that is all for today", transcript


# A turn, then a long pause (a whole recording segment or more passes with the caller silent), then goodbye.
TURN_PAUSE_GOODBYE = {"name": "turn-pause-goodbye", "voice": "formant", "steps": [
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}},
    {"say": "I would like to check my order status"},
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}},
    {"pause": 14},
    {"say": "thank you, that is all for today"},
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}},
    {"hangup": {}},
]}


def _seconds_stored(media: CallMedia, sid: str, worker: str | None = None) -> float:
    total = 0.0
    for key in media.recording_segments(sid):
        if worker is None or f"-{worker}-" in key:
            audio = decode_wav(media.store.get(key))
            total += len(audio.pcm) / (2 * audio.num_channels * audio.sample_rate)
    return total


def test_worker_killed_mid_call_its_recording_survives_but_the_last_segment(small_stack):
    stack = small_stack(workers=2, capacity=2, dialer=True)
    calls = Calls(stack)
    media = CallMedia(FilesystemObjectStore(stack.storage_dir))
    sid = calls.place(TURN_PAUSE_GOODBYE)
    victim = _wait(lambda: calls.worker_of(sid), what="call attached")
    attached_at = float(_wait(lambda: calls.r.hget(calls.keys.call(sid), "attached_at"), what="attached_at"))
    _wait(lambda: len(media.recording_segments(sid)) >= 2, timeout=30, what="two segments stored")
    time.sleep(SEGMENT_S * 0.6)  # the kill falls inside a segment: its audio so far is lost with the worker
    stack.processes[victim].popen.send_signal(signal.SIGKILL)
    killed_at = time.time()
    lost_s = (killed_at - attached_at) - _seconds_stored(media, sid, victim)
    # at most the segment being recorded, plus the time a cut segment takes to reach the store
    assert lost_s <= SEGMENT_S + 1.0, f"the killed worker lost {lost_s:.1f} s of recording"

    report = calls.finish(sid)
    assert report["status"] == "completed", report
    record = _wait(lambda: (r := calls.r.hgetall(calls.keys.call(sid))).get("ended_at") and r,
                   what="the call's end stored")
    assert record["worker_id"] != victim
    api = httpx.Client(base_url=stack.urls["dialer"], timeout=30)
    assert api.get(f"/v1/calls/{sid}/recording").status_code == 401
    served = api.get(f"/v1/calls/{sid}/recording", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert served.status_code == 200 and served.headers["content-type"] == "audio/wav"
    audio = decode_wav(served.content)
    served_s = len(audio.pcm) / (2 * audio.num_channels * audio.sample_rate)
    call_s = float(record["ended_at"]) - attached_at
    assert served_s == pytest.approx(_seconds_stored(media, sid), abs=0.01)
    # both workers' parts: all of the call but the killed worker's last segment and the re-attach gap
    print(f"recording: killed worker lost {lost_s:.2f} s; served {served_s:.2f} s of a {call_s:.2f} s call")
    assert served_s >= call_s - SEGMENT_S - 2.0, (served_s, call_s)
