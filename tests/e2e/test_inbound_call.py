"""A call to our number answered by the agent, over the real wire protocols, every service its
own process: emulator phone -> gateway -> bot-worker (fake providers moving real audio)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import redis

from helpers.recordings import stored_recording
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.turns import audio_heard_between, turn_latencies
from voicebot_worker.turn_start import MIN_BARGE_IN_SPEECH_S

THREE_TURNS, BARGE_IN, IDLE, END_CALL, TRANSFER = (f"+1555700000{i}" for i in range(1, 6))
BACKCHANNEL = "+15557000008"


def _store(stack):
    return redis.Redis.from_url(stack.redis_url, decode_responses=True), RedisKeys(stack.config.redis_prefix)


def _wait_transcript(stack, call_sid: str, timeout: float = 15) -> tuple[dict, list[dict]]:
    r, keys = _store(stack)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = r.get(keys.call_transcript(call_sid))
        call = r.hgetall(keys.call(call_sid))
        if raw and call.get("outcome"):
            return call, json.loads(raw)
        time.sleep(0.2)
    raise AssertionError(f"no transcript for {call_sid}; call: {r.hgetall(keys.call(call_sid))}")


def test_three_turn_call_with_greeting_marks_and_stereo_recording(stack, phone):
    sid = phone.call(THREE_TURNS, "three-turns")
    report = phone.wait(sid)
    assert report["status"] == "completed", report
    said, heard = report["said"], report["heard"]
    assert len(said) == 3
    assert heard and heard[0]["start"] < said[0]["start"], "the caller hears the greeting first"
    assert any(not m["cleared"] for m in report["marks"]), "marks echoed after played audio"
    for turn in turn_latencies(report):
        assert turn.latency_s is not None and turn.latency_s < 2.5, turn
    call, transcript = _wait_transcript(stack, sid)
    user = [t["text"] for t in transcript if t["role"] == "user"]
    bot = [t["text"] for t in transcript if t["role"] == "assistant"]
    assert user == ["I would like to check my order status", "my order number is four two seven",
                    "thank you, that is all for today"]
    assert bot[0].startswith("Hello, thanks for calling")
    assert "What is your order number?" in bot[1] and "arrives tomorrow" in bot[2]
    assert call["outcome"] == "completed"
    samples, _ = stored_recording(stack.storage_dir, sid)
    assert samples.shape[1] == 2
    caller_rms, bot_rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2, axis=0))
    assert caller_rms > 100 and bot_rms > 100, (caller_rms, bot_rms)


def test_barge_in_clears_and_nothing_of_the_reply_plays_after_it(stack, phone):
    sid = phone.call(BARGE_IN, "barge-in")
    report = phone.wait(sid)
    barge = report["said"][1]
    clears_after = [t for t in report["clears"] if t >= barge["start"]]
    assert clears_after, report["timeline"]
    # A turn over the bot needs MIN_BARGE_IN_SPEECH_S (0.3 s) of voice: backchannels do not interrupt.
    assert clears_after[0] - barge["start"] <= MIN_BARGE_IN_SPEECH_S + 0.3, (barge, report["clears"])
    # no answer starts before the caller stops: bot audio in between is the interrupted reply
    assert audio_heard_between(report["heard"], clears_after[0], barge["end"]) == 0, report["heard"]
    _, transcript = _wait_transcript(stack, sid)
    cut = [t for t in transcript if t["role"] == "assistant" and t.get("interrupted")]
    assert cut, transcript
    assert cut[0]["text"].startswith("We are open from nine")
    assert len(cut[0]["heard"]) < len(cut[0]["text"])


def test_a_backchannel_does_not_interrupt_and_a_barge_in_still_does(stack, phone):
    sid = phone.call(BACKCHANNEL, "backchannel")
    report = phone.wait(sid, timeout=60)
    ask, uh_huh, ask_again, barge = report["said"]
    assert [s["text"] for s in (uh_huh, barge)] == ["uh-huh", "wait, one more question"]
    # the bot paused at the caller's voice (a `clear`) and its reply went on after the "uh-huh"
    paused = [t for t in report["clears"] if ask["end"] < t < ask_again["start"]]
    assert len(paused) == 1 and uh_huh["start"] <= paused[0] <= uh_huh["end"] + 0.3, report["timeline"]
    assert [seg for seg in report["heard"] if ask["end"] < seg["start"] < uh_huh["start"]], report["heard"]
    assert [seg for seg in report["heard"] if uh_huh["end"] < seg["start"] < uh_huh["end"] + 1.5], report["heard"]
    assert [t for t in report["clears"] if t >= barge["start"]], report["timeline"]
    _, transcript = _wait_transcript(stack, sid)
    assert "uh-huh" not in [t["text"] for t in transcript if t["role"] == "user"]
    assert [t["interrupted"] for t in transcript if t["role"] == "assistant"] == [False, False, True, False]


def test_idle_prompt_after_five_seconds_then_polite_hang_up(stack, phone):
    sid = phone.call(IDLE, "silent")
    report = phone.wait(sid, timeout=45)
    heard = report["heard"]
    assert len(heard) >= 3, heard  # greeting, prompt(s), goodbye
    gap = heard[1]["start"] - heard[0]["end"]
    assert 4.5 <= gap <= 5.5, heard
    _, transcript = _wait_transcript(stack, sid)
    bot = [t["text"] for t in transcript if t["role"] == "assistant"]
    assert bot.count("Are you still there?") == 2 and bot[-1].startswith("I haven't heard from you")
    assert any(e["event"] == "rest-update" or "completed" in json.dumps(e) for e in report["timeline"])


def test_end_call_tool_hangs_up_through_the_rest_api(stack, phone):
    sid = phone.call(END_CALL, "end-call")
    report = phone.wait(sid)
    assert report["status"] == "completed"
    updates = [e for e in report["timeline"] if "update" in e["event"]]
    assert any(e["detail"].get("Status") == "completed" or e["detail"].get("status") == "completed"
               for e in updates), report["timeline"]
    call, transcript = _wait_transcript(stack, sid)
    assert transcript[-1]["text"] == "Thanks for calling. Goodbye!"
    assert call["outcome"] == "completed"


def test_transfer_to_human_redirects_the_call_to_dial(stack, phone):
    sid = phone.call(TRANSFER, "transfer")
    report = phone.wait(sid)
    dials = [v for v in report["twiml"] if v["verb"] == "Dial"]
    assert dials and dials[0]["number"] == "+15550109999", report["twiml"]
    call, _ = _wait_transcript(stack, sid)
    assert call["outcome"] == "transferred"


@pytest.mark.timeout(120)
def test_draining_worker_gets_no_call_and_no_free_worker_means_busy_message(stack, phone):
    r, keys = _store(stack)
    workers = sorted(r.zrange(keys.workers(), 0, -1))
    assert len(workers) == 2
    r.hset(keys.worker(workers[0]), "draining", 1)
    try:
        sid = phone.call(THREE_TURNS, "three-turns")
        report = phone.wait(sid)
        assert report["status"] == "completed"
        assert r.hget(keys.call(sid), "worker_id") == workers[1]
        r.hset(keys.worker(workers[1]), "draining", 1)
        busy = phone.wait(phone.call(THREE_TURNS, "three-turns"))
        says = [v["text"] for v in busy["twiml"] if v["verb"] == "Say"]
        assert says and "busy" in says[0], busy["twiml"]
        assert busy["heard"], "the busy message is heard, never silence"
    finally:
        for worker in workers:
            r.hset(keys.worker(worker), "draining", 0)
