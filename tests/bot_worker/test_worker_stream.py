"""The worker app for real: uvicorn, Redis, a pipecat pipeline per call, formant speech as the caller."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis

from helpers.constants import WORKER_TICKET_SECRET as TICKET_SECRET
from helpers.recordings import stored_recording
from helpers.twilio_peer import TwilioPeer
from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallStore
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.tickets import issue_ticket
from voicebot_worker.turn_start import MIN_BARGE_IN_SPEECH_S


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


async def open_call(base: str, settings, profile: str, params: dict[str, str] | None = None,
                    **kwargs) -> TwilioPeer:
    call_sid = new_call_sid()
    ticket = issue_ticket(TICKET_SECRET, call_sid, settings.worker_id)
    peer = TwilioPeer(f"{base}/streams/{call_sid}?ticket={ticket}", call_sid,
                      custom_parameters={"direction": "inbound", "from": "+15550001111",
                                         "to": "+15550002222", "agent_profile": profile, **(params or {})},
                      **kwargs)
    await peer.connect()
    return peer


async def test_three_turns_greeting_marks_transcript_and_recording(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(redis, RedisKeys(redis_prefix))
    peer = await open_call(base, settings, "fake-three-turns")
    try:
        # greeting: audio, then a mark after it
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        first_media = peer.log.events("media")[0]
        first_mark = peer.log.events("mark")[0]
        assert first_media.at <= first_mark.at
        await peer.wait_bot_quiet(0.5)
        greeting_marks = {m.message["mark"]["name"] for m in peer.log.events("mark")}
        assert greeting_marks <= {name for _, name in peer.log.echoed_marks}

        peer.say("I would like to check my order status")
        before = len(peer.log.events("mark"))
        await peer.wait_for(lambda: len(peer.log.events("mark")) > before, timeout=15)
        await peer.wait_bot_quiet(0.5)
        context = await store.load_context(peer.call_sid)
        assert context is not None
        assert any(m["role"] == "user" and "order status" in m["content"] for m in context)
        assert any(m["role"] == "assistant" and "order number" in m["content"] for m in context)
        # during the call, the transcript so far is in the object store (what the transcript route serves)
        media = CallMedia(FilesystemObjectStore(settings.storage_dir))
        deadline = time.monotonic() + 5
        while not any(e["role"] == "user" for e in media.transcript(peer.call_sid) or []):
            assert time.monotonic() < deadline, "no transcript stored during the call"
            await asyncio.sleep(0.1)
        assert media.transcript(peer.call_sid)[1]["text"] == "I would like to check my order status"
    finally:
        await peer.close()
    # the worker ends the call when the stream goes away, then stores transcript, outcome, recording
    call_key = RedisKeys(redis_prefix).call(peer.call_sid)
    deadline = time.monotonic() + 15
    while not await redis.hget(call_key, "ended_at"):
        assert time.monotonic() < deadline, "call end was not stored"
        await asyncio.sleep(0.1)
    async with httpx.AsyncClient() as client:
        exposition = (await client.get(base.replace("ws://", "http://") + "/metrics")).text
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in exposition.splitlines()
               if line and not line.startswith("#")}
    assert samples["voicebot_turn_latency_seconds_count"] >= 1
    print("mean turn latency (s):", samples["voicebot_turn_latency_seconds_sum"]
          / samples["voicebot_turn_latency_seconds_count"])
    assert samples['voicebot_service_ttfb_seconds_count{service="llm"}'] >= 1
    assert samples['voicebot_service_ttfb_seconds_count{service="tts"}'] >= 1
    assert samples['voicebot_call_outcomes_total{direction="inbound",outcome="completed"}'] >= 1
    transcript = await store.transcript(peer.call_sid)
    roles = [entry["role"] for entry in transcript]
    assert roles[:3] == ["assistant", "user", "assistant"], transcript
    assert transcript[0]["text"].startswith("Hello, thanks for calling")
    assert transcript[0]["heard"] == transcript[0]["text"] and not transcript[0]["interrupted"]
    assert transcript[1]["text"] == "I would like to check my order status"
    assert "order number" in transcript[2]["text"]
    # the answer carries the turn latency (caller's speech end -> first bot audio); the greeting answers no turn
    assert "latency_ms" not in transcript[0]
    assert isinstance(transcript[2]["latency_ms"], int) and 0 < transcript[2]["latency_ms"] < 10_000, transcript
    call = await redis.hgetall(call_key)
    assert call["worker_id"] == settings.worker_id and call["agent_profile"] == "fake-three-turns"
    assert call["recording"].endswith(f"calls/{peer.call_sid}/recording")
    audio, rate = stored_recording(settings.storage_dir, peer.call_sid)
    assert rate == 8000 and audio.ndim == 2 and audio.shape[1] == 2
    assert audio[:, 0].astype(float).std() > 100 and audio[:, 1].astype(float).std() > 100  # caller, bot
    await redis.aclose()


async def wait_call_ended(redis: aioredis.Redis, prefix: str, call_sid: str, timeout: float = 15) -> dict:
    key = RedisKeys(prefix).call(call_sid)
    deadline = time.monotonic() + timeout
    while not await redis.hget(key, "ended_at"):
        assert time.monotonic() < deadline, "call end was not stored"
        await asyncio.sleep(0.1)
    return await redis.hgetall(key)


async def test_barge_in_clears_and_records_what_was_heard(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    peer = await open_call(base, settings, "fake-barge-in")
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        await peer.wait_bot_quiet(0.5)
        greeting_marks = len(peer.log.events("mark"))
        peer.say("tell me about your opening hours")
        # let the first sentence of the long reply play completely, then talk over the second
        await peer.wait_for(lambda: len(peer.log.echoed_marks) > greeting_marks, timeout=20)
        await asyncio.sleep(0.4)
        assert not peer.log.events("clear") or peer.log.events("clear")[-1].at < peer.log.echoed_marks[-1][0]
        clears_before = len(peer.log.events("clear"))
        peer.say("wait, one more question")
        await peer.wait_for(lambda: len(peer.log.events("clear")) > clears_before + 1, timeout=5)
        speech_start = peer.speech_started_at[-1]
        pause_at, clear_at = (c.at for c in peer.log.events("clear")[clears_before:clears_before + 2])
        # The bot pauses (a first `clear`) at VAD start, before the speech is known to be no backchannel;
        # the turn, and pipecat's interruption with its `clear`, come after MIN_BARGE_IN_SPEECH_S of voice,
        # then target 300 ms more. On a machine whose run queue is far longer than its cores (shared CI),
        # event-loop delays add up to ~0.2 s here; the VAD's own part is checked exactly in test_turns.py.
        overloaded = os.getloadavg()[0] > 1.5 * (os.cpu_count() or 1)
        print(f"barge-in: paused {pause_at - speech_start:.3f} s, cleared {clear_at - speech_start:.3f} s after the "
              f"caller's speech started (overloaded={overloaded})")
        slack = 0.5 if overloaded else 0.3
        assert pause_at - speech_start < MIN_BARGE_IN_SPEECH_S + slack - 0.3, "paused late"
        assert MIN_BARGE_IN_SPEECH_S < clear_at - speech_start < MIN_BARGE_IN_SPEECH_S + slack
        assert peer.log.played_s(pause_at, clear_at) == 0  # nothing played between the pause and the interruption
        # the bot answers the barge-in: new audio and a new mark after the clear
        await peer.wait_for(lambda: any(m.at > clear_at + 0.5 for m in peer.log.events("mark")), timeout=20)
        await peer.wait_bot_quiet(0.5, timeout=20)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, peer.call_sid)
    transcript = await CallStore(redis, RedisKeys(redis_prefix)).transcript(peer.call_sid)
    bot = [e for e in transcript if e["role"] == "assistant"]
    users = [e["text"] for e in transcript if e["role"] == "user"]
    assert users == ["tell me about your opening hours", "wait, one more question"]
    reply = bot[1]
    assert reply["interrupted"] is True
    assert reply["text"].startswith("We are open from nine")
    assert reply["heard"] and reply["text"].startswith(reply["heard"]) and reply["heard"] != reply["text"]
    assert bot[2]["text"] == "Of course, go ahead." and not bot[2]["interrupted"]
    await redis.aclose()


async def test_full_worker_refuses_with_1013(worker_factory):
    base, settings = worker_factory(worker_capacity=1)
    first = await open_call(base, settings, "fake-three-turns")
    try:
        await first.wait_for(lambda: first.log.events("media"), timeout=15)
        second = await open_call(base, settings, "fake-three-turns")
        await asyncio.wait_for(second.closed.wait(), 5)
        assert second.log.close_code == 1013 and "full" in second.log.close_reason
        await second.close()
        async with httpx.AsyncClient() as client:
            ready = await client.get(base.replace("ws://", "http://") + "/readyz")
        assert ready.status_code == 200 and ready.json()["calls"] == 1
    finally:
        await first.close()


# The worker is the last line when such a frame gets past the gateway.
@pytest.mark.parametrize(("frame", "reason"), [
    ('{"event": "media", "streamSid": "MZ1", "media": {}}', "payload"),
    ('{"event":"media","streamSid":"MZ1","media":{"track":"inbound","payload":"' + "!!!!" * 54 + '"}}',
     "media payload is not base64"),
    ('{"event":"media","media":{"track":"inbound","payload":"' + "/" * 216 + '"}}', "media frame without a streamSid"),
])
async def test_malformed_frame_closes_only_that_stream(worker_factory, redis_url, redis_prefix, frame, reason):
    base, settings = worker_factory(worker_capacity=2)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    bad = await open_call(base, settings, "fake-three-turns")
    good = await open_call(base, settings, "fake-three-turns")
    try:
        await bad.wait_for(lambda: bad.log.events("media"), timeout=15)
        await bad.send_raw(frame)
        await asyncio.wait_for(bad.closed.wait(), 5)
        assert bad.log.close_code == 1007 and reason in bad.log.close_reason
        call = await wait_call_ended(redis, redis_prefix, bad.call_sid)
        assert call["outcome"] == "failed" and call["end_reason"] == "malformed_frame"
        # the other call carries on: it still answers the caller
        await good.wait_bot_quiet(0.5)
        marks_before = len(good.log.events("mark"))
        good.say("I would like to check my order status")
        await good.wait_for(lambda: len(good.log.events("mark")) > marks_before, timeout=15)
        assert not good.closed.is_set()
    finally:
        await bad.close()
        await good.close()
    await redis.aclose()


async def test_registry_health_and_metrics(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory(worker_capacity=3, worker_heartbeat_interval_s=0.2)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    registry = WorkerRegistry(redis, RedisKeys(redis_prefix))
    workers = {w.worker_id: w for w in await registry.list_workers()}
    assert workers[settings.worker_id].capacity == 3
    assert workers[settings.worker_id].address == settings.worker_advertise_url
    http = base.replace("ws://", "http://")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{http}/healthz")).status_code == 200
        assert (await client.get(f"{http}/readyz")).status_code == 200
        text = (await client.get(f"{http}/metrics")).text
    assert "voicebot_worker_capacity_calls 3.0" in text and "voicebot_worker_free_slots" in text
    # the registry entry expired (e.g. Redis restarted): the heartbeat registers the worker again
    await redis.delete(RedisKeys(redis_prefix).worker(settings.worker_id))
    await asyncio.sleep(0.8)
    assert settings.worker_id in {w.worker_id for w in await registry.list_workers()}
    await redis.aclose()


async def test_dtmf_is_recorded_as_a_call_event(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(redis, RedisKeys(redis_prefix))
    peer = await open_call(base, settings, "fake-dtmf")
    try:
        await peer.wait_for(lambda: peer.log.events("media"), timeout=15)
        for digit in "1#":
            await peer.send_json({"event": "dtmf", "streamSid": peer.stream_sid, "sequenceNumber": "9",
                                  "dtmf": {"track": "inbound_track", "digit": digit}})
        await asyncio.sleep(0.5)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, peer.call_sid)
    digits = [e["digit"] for e in await store.events(peer.call_sid) if e["kind"] == "dtmf"]
    assert digits == ["1", "#"]
    await redis.aclose()


async def test_a_call_with_no_sign_of_life_for_the_pipeline_idle_timeout_is_ended(worker_factory, redis_url,
                                                                                    redis_prefix):
    # Idle prompts off, so after the greeting nothing happens: the call session's watchdog ends the call.
    base, settings = worker_factory(worker_pipeline_idle_timeout_s=2.0, worker_idle_timeout_s=0)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    peer = await open_call(base, settings, "fake-dtmf")
    try:
        await peer.wait_for(lambda: peer.log.events("media"), timeout=15)
        greeted_at = time.monotonic()
        call = await wait_call_ended(redis, redis_prefix, peer.call_sid, timeout=15)
        assert time.monotonic() - greeted_at >= 2.0
        assert call["end_reason"] == "pipeline_idle"
    finally:
        await peer.close()
        await redis.aclose()
