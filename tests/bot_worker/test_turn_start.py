"""Backchannels do not interrupt the bot; real barge-ins still do (real worker, formant speech)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from test_worker_stream import open_call, wait_call_ended

from voicebot_core.calls import CallStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_worker.turn_start import MIN_BARGE_IN_SPEECH_S


async def test_a_backchannel_over_the_bot_is_not_a_turn_and_a_barge_in_still_clears(
        worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    peer = await open_call(base, settings, "fake-backchannel")  # caller script `backchannel`: what the STT hears
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        await peer.wait_bot_quiet(0.5)
        media_before = len(peer.log.events("media"))
        peer.say("tell me about your opening hours")
        await peer.wait_for(lambda: len(peer.log.events("media")) > media_before, timeout=20)
        reply_at = peer.log.events("media")[media_before].at  # (each turn start clears: the one before is the ask's)
        await asyncio.sleep(1.0)
        peer.say("uh-huh", seconds=0.2)  # 0.2 s of voice over the reply
        await peer.wait_bot_quiet(1.0, timeout=30)
        assert not [c for c in peer.log.events("clear") if c.at > reply_at], "the backchannel interrupted the bot"

        media_before = len(peer.log.events("media"))
        peer.say("and your opening hours on holidays")
        await peer.wait_for(lambda: len(peer.log.events("media")) > media_before, timeout=20)
        await asyncio.sleep(1.0)
        clears_before = len(peer.log.events("clear"))
        speech_s = peer.say("wait, one more question")
        await peer.wait_for(lambda: len(peer.log.events("clear")) > clears_before, timeout=5)
        latency = peer.log.events("clear")[clears_before].at - peer.speech_started_at[-1]
        print(f"barge-in: clear {latency:.3f}s after the caller's speech started")
        assert MIN_BARGE_IN_SPEECH_S <= latency < speech_s
        speech_end = peer.speech_started_at[-1] + speech_s
        await peer.wait_for(lambda: peer.log.events("media")[-1].at > speech_end, timeout=20)  # the answer
        await peer.wait_bot_quiet(1.0, timeout=20)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, peer.call_sid)
    transcript = await CallStore(redis, RedisKeys(redis_prefix)).transcript(peer.call_sid)
    said = [e["text"] for e in transcript if e["role"] == "user"]
    assert said == ["tell me about your opening hours", "and your opening hours on holidays",
                    "wait, one more question"]  # "uh-huh" was no turn
    replies = [e for e in transcript if e["role"] == "assistant"]
    assert [r["interrupted"] for r in replies] == [False, False, True, False]
    assert replies[1]["heard"] == replies[1]["text"]  # heard whole, through the backchannel
    await redis.aclose()
