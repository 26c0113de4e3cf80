"""The shipped default turn path in whole calls: Smart Turn v3 + noise filter + VAD (every other e2e
profile uses the deterministic speech_timeout). The profiles below leave turn_detection and
noise_filter unset, so they run whatever AgentProfile ships as default.

Smart Turn's verdict on synthetic speech varies (an "incomplete" pause ends the turn after its 3 s
fallback), so these tests assert behaviours as counts, not timings.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import redis
import yaml

from helpers.recordings import stored_recording
from voicebot_core.profiles import AgentProfile
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_devstack.turns import turn_latencies

THREE_TURNS, BARGE_IN = "+15557100001", "+15557100002"
GREETING = {"inbound": "Hello, thanks for calling. How can I help you today?"}
PROFILES = {
    "default_profile": "shipped-three-turns",
    "numbers": {THREE_TURNS: "shipped-three-turns", BARGE_IN: "shipped-barge-in"},
    "profiles": {
        "shipped-three-turns": {
            "greeting": GREETING, "providers": "fake",
            "provider_options": {"caller_script": "three-turns", "replies": [
                {"match": "order status", "reply": "Sure, I can help with that. What is your order number?"},
                {"match": "four two seven", "reply": "Order four two seven shipped yesterday and arrives tomorrow."},
                {"match": "that is all", "reply": "You are welcome. Have a great day!"}]},
        },
        "shipped-barge-in": {
            "greeting": GREETING, "providers": "fake",
            "provider_options": {"caller_script": "barge-in", "replies": [
                {"match": "opening hours", "reply": (
                    "We are open from nine in the morning until six in the evening on weekdays, and from ten "
                    "until four on Saturdays. On Sundays and public holidays we are closed, but you can always "
                    "reach us online.")},
                {"match": "one more question", "reply": "Of course, go ahead."}]},
        },
    },
}


def test_the_profiles_here_run_the_shipped_defaults():
    shipped = AgentProfile()
    assert shipped.turn_detection == "smart_turn_v3"
    for profile in PROFILES["profiles"].values():
        assert "turn_detection" not in profile and "noise_filter" not in profile


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url):
    run_dir = tmp_path_factory.mktemp("shipped")
    profiles = run_dir / "profiles.yaml"
    profiles.write_text(yaml.safe_dump(PROFILES))
    stack = Stack(StackConfig(run_dir=run_dir, workers=1, worker_capacity=2, profiles_path=profiles,
                              redis_prefix=f"e2e-shipped-{int(time.time() * 1000)}"))
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def phone(stack, phone_for):
    return phone_for(stack)


def _transcript(stack, call_sid: str, timeout: float = 20) -> tuple[dict, list[dict]]:
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = RedisKeys(stack.config.redis_prefix)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = r.get(keys.call_transcript(call_sid))
        call = r.hgetall(keys.call(call_sid))
        if raw and call.get("outcome"):
            return call, json.loads(raw)
        time.sleep(0.2)
    raise AssertionError(f"no transcript for {call_sid}")


def test_three_turns_every_turn_answered_with_smart_turn_and_noise_filter(stack, phone):
    sid = phone.call(THREE_TURNS, "three-turns")
    report = phone.wait(sid, timeout=90)
    assert report["status"] == "completed", report
    assert len(report["said"]) == 3
    turns = turn_latencies(report)
    assert len(turns) == 3 and all(t.latency_s is not None for t in turns), turns
    call, transcript = _transcript(stack, sid)
    user = [t["text"] for t in transcript if t["role"] == "user"]
    bot = [t["text"] for t in transcript if t["role"] == "assistant"]
    assert len(user) == 3, transcript  # one caller turn per sentence: no pause split a turn
    assert len(bot) == 4, transcript  # greeting + three replies
    assert call["outcome"] == "completed"
    samples, _ = stored_recording(stack.storage_dir, sid)
    assert samples.shape[1] == 2
    caller_rms, bot_rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2, axis=0))
    assert caller_rms > 100 and bot_rms > 100, (caller_rms, bot_rms)  # the filter left the caller audible


def test_barge_in_clears_and_cuts_the_reply_with_smart_turn_and_noise_filter(stack, phone):
    sid = phone.call(BARGE_IN, "barge-in")
    report = phone.wait(sid, timeout=90)
    barge = report["said"][1]
    assert [t for t in report["clears"] if t >= barge["start"]], report["timeline"]
    _, transcript = _transcript(stack, sid)
    cut = [t for t in transcript if t["role"] == "assistant" and t.get("interrupted")]
    assert len(cut) == 1, transcript
    assert cut[0]["text"].startswith("We are open from nine")
    assert len([t for t in transcript if t["role"] == "user"]) == 2, transcript
