"""Backchannels do not interrupt the bot: it pauses at the caller's voice and goes on without losing a
word. Real barge-ins still interrupt (real worker, formant speech)."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis.asyncio as aioredis
from test_worker_stream import open_call, wait_call_ended

from voicebot_core.calls import CallStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_simulation.formant_voice import synthesize
from voicebot_worker.providers.fake import FakeTTS
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
        synthesized = Counter(FakeTTS.syntheses)
        peer.say("tell me about your opening hours")
        await peer.wait_for(lambda: len(peer.log.events("media")) > media_before, timeout=20)
        reply_at = peer.log.events("media")[media_before].at  # (each turn start clears: the one before is the ask's)
        await asyncio.sleep(1.0)
        peer.say("uh-huh", seconds=0.2)  # 0.2 s of voice over the reply
        await peer.wait_bot_quiet(1.0, timeout=30)
        uh_huh_at = peer.speech_started_at[-1]
        paused = [c.at for c in peer.log.events("clear") if c.at > reply_at]
        assert len(paused) == 1 and 0 < paused[0] - uh_huh_at < MIN_BARGE_IN_SPEECH_S, (uh_huh_at, paused)
        # every sentence of the reply played whole: what the pause's `clear` dropped was sent again
        reply_s = sum(len(synthesize(text, 8000)) / 8000 for text in FakeTTS.syntheses - synthesized)
        played_s = peer.log.played_s(reply_at)
        print(f"reply {reply_s:.3f} s, played {played_s:.3f} s, paused {paused[0] - uh_huh_at:.3f} s after the uh-huh")
        assert reply_s - 0.01 <= played_s <= reply_s + 0.1, (reply_s, played_s)

        media_before = len(peer.log.events("media"))
        peer.say("and your opening hours on holidays")
        await peer.wait_for(lambda: len(peer.log.events("media")) > media_before, timeout=20)
        await asyncio.sleep(1.0)
        clears_before = len(peer.log.events("clear"))
        speech_s = peer.say("wait, one more question")
        await peer.wait_for(lambda: len(peer.log.events("clear")) > clears_before + 1, timeout=5)
        started = peer.speech_started_at[-1]
        pause_at, interruption_at = (c.at - started for c in peer.log.events("clear")[clears_before:])
        print(f"barge-in: paused {pause_at:.3f} s, interrupted {interruption_at:.3f} s after the speech started")
        assert pause_at < MIN_BARGE_IN_SPEECH_S <= interruption_at < speech_s
        speech_end = peer.speech_started_at[-1] + speech_s
        assert peer.log.played_s(peer.speech_started_at[-1] + pause_at, speech_end) == 0  # silent since the pause
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
