"""A barge-in through the real worker: nothing of the interrupted reply after the `clear`, and the LLM
context keeps what the caller heard of it (fake providers, formant speech, real Redis)."""

from __future__ import annotations

import redis.asyncio as aioredis
from test_worker_stream import open_call, wait_call_ended

from voicebot_core.calls import CallStore
from voicebot_core.redis_keys import RedisKeys

REPLY_START = "We are open from nine"  # fake-barge-in-short-sentences


async def test_interrupted_reply_stops_at_the_clear_and_the_context_keeps_what_was_heard(
        worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(redis, RedisKeys(redis_prefix))
    # Audio plays 0.8 s after it reaches the phone (network, jitter buffer), so the output has sent
    # (and pipecat's assistant aggregator taken in) a sentence before the caller hears it.
    peer = await open_call(base, settings, "fake-barge-in-short-sentences", playout_delay_s=0.8)
    try:
        await peer.wait_for(lambda: peer.log.events("mark"), timeout=15)
        await peer.wait_bot_quiet(0.5)
        greeting_marks = len(peer.log.events("mark"))
        peer.say("tell me about your opening hours")
        # The first sentence of the reply plays whole; the caller talks as the second has just been sent
        # whole (its mark is here), 0.8 s before it ends at the phone.
        await peer.wait_for(lambda: len(peer.log.events("mark")) > greeting_marks + 1, timeout=20)
        assert len(peer.log.echoed_marks) == greeting_marks + 1
        clears_before = len(peer.log.events("clear"))
        speech_s = peer.say("wait, one more question")
        await peer.wait_for(lambda: len(peer.log.events("clear")) > clears_before, timeout=5)
        clear_at = peer.log.events("clear")[clears_before].at
        speech_end = peer.speech_started_at[-1] + speech_s
        # the call goes on: the bot answers the barge-in
        await peer.wait_for(lambda: any(m.at > speech_end for m in peer.log.events("mark")), timeout=20)
        await peer.wait_bot_quiet(0.5, timeout=20)
        # No answer can start before the caller stops talking: media in between is the interrupted reply.
        leaked = [m for m in peer.log.events("media") if clear_at < m.at < speech_end]
        assert not leaked, f"{len(leaked)} media frames of the interrupted reply after the clear"
        assert any(m.at > speech_end for m in peer.log.events("media"))
        context = await store.load_context(peer.call_sid)
    finally:
        await peer.close()
    await wait_call_ended(redis, redis_prefix, peer.call_sid)
    transcript = await store.transcript(peer.call_sid)
    reply = next(e for e in transcript if e["role"] == "assistant" and e["text"].startswith(REPLY_START))
    assert reply["interrupted"] and reply["heard"] and reply["heard"] != reply["text"]
    # the checkpointed context holds the heard part, in its place, and not the unheard rest
    turns = [(m["role"], m["content"]) for m in context if m["role"] != "system"]
    assert turns[1:4] == [("user", "tell me about your opening hours"), ("assistant", reply["heard"]),
                          ("user", "wait, one more question")], turns
    assert not any("Sundays" in content for _, content in turns)
    assert turns[4] == ("assistant", "Of course, go ahead.")
    await redis.aclose()
