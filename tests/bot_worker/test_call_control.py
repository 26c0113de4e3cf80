"""Tools, idle prompts, status callbacks, resume and outbound variables, on a real worker."""

from __future__ import annotations

import asyncio
import time
from xml.etree import ElementTree

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from pydantic import ValidationError
from test_worker_stream import new_call_sid, open_call, wait_call_ended

from helpers.constants import TEST_PROFILES_PATH as PROFILES_PATH
from helpers.constants import WORKER_TICKET_SECRET as TICKET_SECRET
from helpers.twilio_peer import TwilioPeer
from voicebot_core.calls import CallStore
from voicebot_core.dial_jobs import encode_fields
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.tickets import issue_ticket


def first_media_after(peer: TwilioPeer, t: float) -> float:
    return next(m.at for m in peer.log.events("media") if m.at > t)


def twiml_verbs(document: str) -> list[tuple[str, str]]:
    """The verbs of a TwiML document, each with its text."""
    root = ElementTree.fromstring(document)
    assert root.tag == "Response"
    return [(verb.tag, verb.text or "") for verb in root]


async def ask_for_a_human(base: str, settings, updates: list[dict], **params: str) -> TwilioPeer:
    """A `fake-transfer` call in which the caller asks for a person, until the worker redirected it."""
    peer = await open_call(base, settings, "fake-transfer", params)
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        await peer.wait_bot_quiet(0.5)
        peer.say("can I speak to a human please")
        await peer.wait_for(lambda: updates, timeout=20)
        await asyncio.wait_for(peer.closed.wait(), 10)
    finally:
        await peer.close()
    return peer


async def test_end_call_tool_says_goodbye_then_hangs_up(worker_factory, rest_updates, redis_url, redis_prefix):
    rest_base, updates = rest_updates
    base, settings = worker_factory(twilio_api_base_url=rest_base)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    peer = await open_call(base, settings, "fake-end-call")
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        await peer.wait_bot_quiet(0.5)
        said_at = time.monotonic()
        peer.say("that is all I needed, goodbye")
        await peer.wait_for(lambda: updates, timeout=20)
        await asyncio.wait_for(peer.closed.wait(), 10)
    finally:
        await peer.close()
    update = updates[0]
    assert update["call_sid"] == peer.call_sid and update["Status"] == "completed" and update["authorized"]
    goodbye_marks = [m for m in peer.log.events("mark") if m.at > said_at]
    assert goodbye_marks, "the goodbye was not spoken"
    echoed = dict((name, at) for at, name in peer.log.echoed_marks)
    # hang-up only after the caller heard the goodbye
    assert update["at"] >= echoed[goodbye_marks[-1].message["mark"]["name"]]
    assert peer.log.close_code == 1000
    call = await wait_call_ended(redis, redis_prefix, peer.call_sid)
    assert call["outcome"] == "completed" and call["end_reason"] == "end_call"
    transcript = await CallStore(redis, RedisKeys(redis_prefix)).transcript(peer.call_sid)
    assert transcript[-1]["role"] == "assistant" and transcript[-1]["text"] == "Thanks for calling. Goodbye!"
    await redis.aclose()


async def test_transfer_redirects_the_call_with_dial_twiml(worker_factory, rest_updates, redis_url, redis_prefix):
    rest_base, updates = rest_updates
    base, settings = worker_factory(twilio_api_base_url=rest_base)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    peer = await ask_for_a_human(base, settings, updates)
    assert twiml_verbs(updates[0]["Twiml"]) == [("Dial", "+15550109999")]
    call = await wait_call_ended(redis, redis_prefix, peer.call_sid)
    assert call["outcome"] == "transferred"
    transcript = await CallStore(redis, RedisKeys(redis_prefix)).transcript(peer.call_sid)
    assert transcript[-1]["text"] == "Let me connect you with a person. One moment please."
    await redis.aclose()


async def test_dial_job_cannot_override_the_transfer_number(worker_factory, rest_updates, redis_url, redis_prefix):
    rest_base, updates = rest_updates
    base, settings = worker_factory(twilio_api_base_url=rest_base)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    # Stored by something other than the dialer (which refuses it with a 422): the worker ignores it.
    await redis.hset(RedisKeys(redis_prefix).dial_job("job-markup"), mapping=encode_fields(
        {"id": "job-markup", "overrides": {"transfer_number": "+1555</Dial><Play>x</Play>"}}))
    await redis.aclose()
    await ask_for_a_human(base, settings, updates, dial_job_id="job-markup")
    assert twiml_verbs(updates[0]["Twiml"]) == [("Dial", "+15550109999")]  # the profile's own number


def transfer_profiles(tmp_path, target: str):
    """tests/agent-profiles.yaml with `fake-transfer` transferring to `target`."""
    data = yaml.safe_load(PROFILES_PATH.read_text())
    data["profiles"]["fake-transfer"]["transfer_number"] = target
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_profile_transfer_target_outside_the_workers_sip_hosts_stops_it_at_start(worker_factory, tmp_path):
    # The worker validates its profiles with its own VOICEBOT_TRANSFER_SIP_HOSTS when it starts, so a
    # target no setting allows never reaches a call (the check before the TwiML is a second line).
    profiles = str(transfer_profiles(tmp_path, "sip:agent@pbx.example.com"))
    with pytest.raises(ValidationError, match=r"pbx\.example\.com"):
        worker_factory(transfer_sip_hosts="", agent_profiles_path=profiles)
    worker_factory(transfer_sip_hosts="pbx.example.com", agent_profiles_path=profiles)  # allowed: it starts


async def test_idle_prompts_at_five_seconds_then_goodbye(worker_factory, rest_updates, redis_url, redis_prefix):
    rest_base, updates = rest_updates
    base, settings = worker_factory(twilio_api_base_url=rest_base)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    peer = await open_call(base, settings, "fake-idle")
    gaps: list[float] = []
    try:
        for _ in range(3):  # greeting -> prompt 1 -> prompt 2 -> goodbye
            marks = len(peer.log.events("mark"))
            await peer.wait_for(lambda n=marks: len(peer.log.events("mark")) > n, timeout=20)
            await peer.wait_for(lambda: time.monotonic() > peer.playback_end + 0.2, timeout=20)
            heard_end = peer.playback_end
            await peer.wait_for(lambda t=heard_end: any(m.at > t for m in peer.log.events("media")), timeout=10)
            gaps.append(first_media_after(peer, heard_end) - heard_end)
        await peer.wait_for(lambda: updates, timeout=20)
    finally:
        await peer.close()
    print("idle gaps (s):", [round(g, 3) for g in gaps])
    assert all(4.5 <= g <= 5.5 for g in gaps), gaps
    assert updates[0]["Status"] == "completed"
    call = await wait_call_ended(redis, redis_prefix, peer.call_sid)
    assert call["end_reason"] == "idle"
    transcript = await CallStore(redis, RedisKeys(redis_prefix)).transcript(peer.call_sid)
    assert [e["text"] for e in transcript] == [
        "Hello, thanks for calling. How can I help you today?", "Are you still there?", "Are you still there?",
        "I haven't heard from you, so I'll end the call now. Goodbye!"]
    await redis.aclose()


async def test_terminal_status_callback_ends_the_pipeline(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    peer = await open_call(base, settings, "fake-three-turns")
    await redis.sadd(keys.worker_calls(settings.worker_id), peer.call_sid)  # the gateway's reservation
    try:
        await peer.wait_for(lambda: peer.log.events("media"), timeout=15)
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"{base.replace('ws://', 'http://')}/calls/{peer.call_sid}/status",
                                      json={"CallSid": peer.call_sid, "CallStatus": "completed"})
        assert reply.json()["ended"] is True
        await asyncio.wait_for(peer.closed.wait(), 10)
    finally:
        await peer.close()
    call = await wait_call_ended(redis, redis_prefix, peer.call_sid)
    assert call["outcome"] == "completed" and call["end_reason"] == "status_completed"
    assert not await redis.sismember(keys.worker_calls(settings.worker_id), peer.call_sid)
    await redis.aclose()


async def test_resumed_call_does_not_greet_again(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(redis, RedisKeys(redis_prefix))
    call_sid = new_call_sid()
    await store.checkpoint_context(call_sid, [
        {"role": "system", "content": "You are a test."},
        {"role": "assistant", "content": "Hello, thanks for calling. How can I help you today?"},
        {"role": "user", "content": "I would like to check my order status"},
        {"role": "assistant", "content": "Sure, I can help with that. What is your order number?"},
    ])
    ticket = issue_ticket(TICKET_SECRET, call_sid, settings.worker_id)
    peer = TwilioPeer(f"{base}/streams/{call_sid}?ticket={ticket}", call_sid,
                      custom_parameters={"direction": "inbound", "agent_profile": "fake-three-turns"})
    await peer.connect()
    try:
        await asyncio.sleep(2.0)
        assert not peer.log.events("media"), "a resumed call must not greet again"
        peer.say("my order number is four two seven")  # the scripted STT continues after the first turn
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        await peer.wait_bot_quiet(0.3)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, call_sid)
    context = await store.load_context(call_sid)
    assert [m["role"] for m in context][:4] == ["system", "assistant", "user", "assistant"]
    assert [m["content"] for m in context if m["role"] == "user"] == [
        "I would like to check my order status", "my order number is four two seven"]
    assert "shipped yesterday" in context[-1]["content"]
    await redis.aclose()


async def test_resumed_call_answers_the_turn_the_earlier_worker_left_unanswered(worker_factory, redis_url,
                                                                              redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(redis, RedisKeys(redis_prefix))
    call_sid = new_call_sid()
    await store.checkpoint_context(call_sid, [  # checkpointed when the caller's turn ended; then the worker died
        {"role": "system", "content": "You are a test."},
        {"role": "assistant", "content": "Hello, thanks for calling. How can I help you today?"},
        {"role": "user", "content": "I would like to check my order status"},
    ])
    ticket = issue_ticket(TICKET_SECRET, call_sid, settings.worker_id)
    peer = TwilioPeer(f"{base}/streams/{call_sid}?ticket={ticket}", call_sid,
                      custom_parameters={"direction": "inbound", "agent_profile": "fake-three-turns"})
    await peer.connect()
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)  # the answer, with no caller audio
        await peer.wait_bot_quiet(0.3)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, call_sid)
    context = await store.load_context(call_sid)
    assert [m["role"] for m in context] == ["system", "assistant", "user", "assistant"], context
    assert "order number" in context[-1]["content"]
    await redis.aclose()


async def test_a_worker_whose_call_moved_on_leaves_the_call_record_to_the_new_worker(worker_factory, redis_url,
                                                                                    redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(redis, RedisKeys(redis_prefix))
    peer = await open_call(base, settings, "fake-three-turns")
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        # the gateway lost this worker (stopped, cut off) and another one took the call over
        await store.upsert(peer.call_sid, worker_id="w-new", attached_at=time.time())
        await store.checkpoint_context(peer.call_sid, [{"role": "user", "content": "kept by w-new"}])
        await store.save_transcript(peer.call_sid, [{"role": "user", "text": "kept by w-new", "at": 1.0}])
    finally:
        await peer.close()  # this worker comes back and finds its stream gone
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient(base_url=base.replace("ws://", "http://")) as http:
        while f"voicebot_worker_free_slots {settings.worker_capacity:.1f}" not in (await http.get("/metrics")).text:
            assert time.monotonic() < deadline, "the old worker did not end its side of the call"
            await asyncio.sleep(0.1)
    record = await store.record(peer.call_sid)
    assert (record.worker_id, record.outcome, record.ended_at) == ("w-new", "", "")
    assert await store.load_context(peer.call_sid) == [{"role": "user", "content": "kept by w-new"}]
    assert await store.transcript(peer.call_sid) == [{"role": "user", "text": "kept by w-new", "at": 1.0}]
    await redis.aclose()


async def test_outbound_greeting_uses_dial_job_variables(worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    await redis.hset(keys.dial_job("job-1"), mapping=encode_fields({
        "id": "job-1",
        "variables": {"name": "Alice"},
        "overrides": {"goodbye": "Bye Alice!"},
    }))
    call_sid = new_call_sid()
    ticket = issue_ticket(TICKET_SECRET, call_sid, settings.worker_id)
    peer = TwilioPeer(f"{base}/streams/{call_sid}?ticket={ticket}", call_sid,
                      custom_parameters={"direction": "outbound", "from": "+15550002222", "to": "+15550001111",
                                         "agent_profile": "fake-outbound", "dial_job_id": "job-1"})
    await peer.connect()
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, call_sid)
    transcript = await CallStore(redis, RedisKeys(redis_prefix)).transcript(call_sid)
    assert transcript[0]["text"].startswith("Hi Alice, this is Robin")
    context = await CallStore(redis, keys).load_context(call_sid)
    assert "name: Alice" in context[0]["content"]
    await redis.aclose()
