"""A caller who pauses mid-sentence is not answered half-way, on the shipped turn path (Smart Turn v3, noise
filter, VAD: the profile below leaves turn_detection unset), with the words of the first half deciding
whether the pause can end the turn (voicebot_worker.turn_words). Counts, not timings."""

from __future__ import annotations

import json
import time

import pytest
import redis
import yaml

from voicebot_core.profiles import AgentProfile
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.stack import Stack, StackConfig

PAUSED_NUMBER = "+15557100011"
SENTENCES = [("I would like to", 0.6, "check the status of my order"),
             ("My order number is", 0.9, "four two seven"),
             ("Could you tell me", 1.2, "when the parcel arrives"),
             ("I ordered a jacket and", 1.4, "it came in the wrong size")]
SCRIPT = {"name": "paused-sentences", "voice": "formant", "steps": [
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}},
    *[step for first, pause, second in SENTENCES for step in (
        {"say": first}, {"silence": pause}, {"say": second}, {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}})],
    {"hangup": {}}]}
PROFILES = {"default_profile": "shipped-paused", "numbers": {PAUSED_NUMBER: "shipped-paused"}, "profiles": {
    "shipped-paused": {"greeting": {"inbound": "Hello, how can I help?"}, "providers": "fake",
                       "provider_options": {"caller_script": SCRIPT, "replies": []}}}}


def test_the_profile_here_runs_the_shipped_turn_detection():
    assert AgentProfile().turn_detection == "smart_turn_v3"
    assert "turn_detection" not in PROFILES["profiles"]["shipped-paused"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url):
    run_dir = tmp_path_factory.mktemp("paused")
    profiles = run_dir / "profiles.yaml"
    profiles.write_text(yaml.safe_dump(PROFILES))
    stack = Stack(StackConfig(run_dir=run_dir, workers=1, profiles_path=profiles,
                              redis_prefix=f"e2e-paused-{int(time.time() * 1000)}"))
    stack.start()
    yield stack
    stack.stop()


def test_no_reply_starts_in_a_mid_sentence_pause_and_each_sentence_is_one_turn(stack, phone_for):
    phone = phone_for(stack)
    sid = phone.call(PAUSED_NUMBER, SCRIPT)
    report = phone.wait(sid, timeout=120)
    assert report["status"] == "completed", report
    said = {entry["text"]: entry for entry in report["said"]}
    heard_starts = [segment["start"] for segment in report["heard"]]
    cut_ins = [first for first, _, second in SENTENCES
               if any(said[first]["end"] <= start < said[second]["end"] for start in heard_starts)]
    assert cut_ins == []
    answered = [first for first, _, second in SENTENCES if any(start >= said[second]["end"] for start in heard_starts)]
    assert len(answered) == len(SENTENCES)
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = RedisKeys(stack.config.redis_prefix)
    deadline = time.monotonic() + 20
    while not (raw := r.get(keys.call_transcript(sid))) or not r.hget(keys.call(sid), "outcome"):
        assert time.monotonic() < deadline, "no transcript"
        time.sleep(0.2)
    user_turns = [entry["text"] for entry in json.loads(raw) if entry["role"] == "user"]
    assert user_turns == [f"{first} {second}" for first, _, second in SENTENCES]
