"""The worker refuses a media frame with a payload that is not base64 or without a streamSid: the
last line when such a frame gets past the gateway. It closes that stream only."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
from test_worker_stream import open_call, wait_call_ended


async def test_bad_media_payload_or_missing_stream_sid_closes_only_that_stream(worker_factory, redis_url,
                                                                               redis_prefix):
    base, settings = worker_factory(worker_capacity=3)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    not_base64 = await open_call(base, settings, "fake-three-turns")
    no_stream_sid = await open_call(base, settings, "fake-three-turns")
    good = await open_call(base, settings, "fake-three-turns")
    bad_frames = {
        not_base64: ({"event": "media", "streamSid": not_base64.stream_sid,
                      "media": {"track": "inbound", "chunk": "9", "timestamp": "180", "payload": "!!!!" * 54}},
                     "media payload is not base64"),
        no_stream_sid: ({"event": "media", "media": {"track": "inbound", "payload": "/" * 216}},
                        "media frame without a streamSid"),
    }
    try:
        for peer, (frame, _) in bad_frames.items():
            await peer.wait_for(lambda peer=peer: peer.log.events("media"), timeout=15)
            await peer.send_raw(json.dumps(frame, separators=(",", ":")))
        for peer, (_, reason) in bad_frames.items():
            await asyncio.wait_for(peer.closed.wait(), 5)
            assert peer.log.close_code == 1007 and peer.log.close_reason == reason
            call = await wait_call_ended(redis, redis_prefix, peer.call_sid)
            assert call["outcome"] == "failed" and call["end_reason"] == "malformed_frame"
        # the other call carries on: it still answers the caller
        await good.wait_bot_quiet(0.5)
        marks_before = len(good.log.events("mark"))
        good.say("I would like to check my order status")
        await good.wait_for(lambda: len(good.log.events("mark")) > marks_before, timeout=15)
        assert not good.closed.is_set()
    finally:
        for peer in (not_base64, no_stream_sid, good):
            await peer.close()
    await redis.aclose()
