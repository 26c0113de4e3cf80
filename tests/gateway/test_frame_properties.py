"""Property-based tests (hypothesis) of malformed Media Streams frames through a real gateway.

After `connected` and `start`, a hypothesis-generated frame (structured frames of every event with
missing or mistyped fields, arbitrary text, nesting deeper than Python's recursion
limit): when parse_frame refuses it the stream closes with 1008 and the reason, when it accepts it the
stream stays open (or closes normally on a valid `stop`), and in every case another call's stream
keeps flowing through the same gateway. Each example runs its own event loop (the gateway runs in a
thread of its own): a synchronous hypothesis test, no hypothesis-in-pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from gateway.twilio_frames import connected, media, open_stream, start
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from helpers.frame_strategies import frames, layouts, texts
from helpers.fuzzing import STREAMS
from helpers.stub_worker import StubWorker
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.twilio_protocol import FrameError, parse_frame

pytestmark = pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)

STREAM = "MZ" + "b" * 32  # the streamSid of gateway.twilio_frames.start()
frames_after_start = st.one_of(
    st.builds(lambda f, layout: layout({**f, "streamSid": STREAM} if "streamSid" in f else f), frames(), layouts),
    texts,
)
_calls = itertools.count()


def _expected_close(frame: str | bytes) -> tuple[int, str] | None:
    """(code, reason) the gateway must close the stream with, None when it must stay open."""
    if isinstance(frame, bytes):
        return 1008, ""
    try:
        parsed = parse_frame(frame, started=True)
    except FrameError as exc:
        return 1008, str(exc)[:60]
    return (1000, "") if parsed.event == "stop" else None


async def _scenario(gateway, signer, redis_url, redis_prefix, frame) -> None:
    n = next(_calls)
    healthy_call, broken_call = f"CA{n:032d}", f"CA{n:031d}f"
    redis = connect(redis_url)
    registry = WorkerRegistry(redis, RedisKeys(redis_prefix))
    try:
        async with StubWorker(f"w{n}") as worker:
            await registry.register(f"w{n}", f"ws://127.0.0.1:{worker.port}", capacity=4)
            healthy = await open_stream(gateway, signer, call_sid=healthy_call)
            await healthy.send(connected())
            await healthy.send(start(healthy_call))
            broken = await open_stream(gateway, signer, call_sid=broken_call)
            await broken.send(connected())
            await broken.send(start(broken_call))
            await broken.send(frame)
            expected = _expected_close(frame)
            if expected is None:  # accepted: still relayed, the stream still open
                await broken.send(media(1))
                assert json.loads(await asyncio.wait_for(broken.recv(), 5))["event"] == "media"
            else:
                with pytest.raises(ConnectionClosed) as info:
                    while True:  # a media frame accepted before the close may be echoed first
                        await asyncio.wait_for(broken.recv(), 5)
                code, reason = expected
                assert info.value.rcvd is not None, "closed without a close frame"
                assert info.value.rcvd.code == code and reason in info.value.rcvd.reason, info.value.rcvd
            # the other call flows on
            await healthy.send(media(2))
            assert json.loads(await asyncio.wait_for(healthy.recv(), 5))["event"] == "media"
            await healthy.close()
            await broken.close()
    finally:
        await registry.deregister(f"w{n}")
        await redis.aclose()


@STREAMS
@given(frame=frames_after_start)
@example(frame="[" * 50_000)  # deeper than Python's recursion limit, within the frame size limit: it was
# a RecursionError out of parse_frame, which aborted the relay's TCP connection with no close frame
@example(frame=json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "!!!!"}}))
def test_a_malformed_frame_closes_only_its_own_stream(gateway, signer, redis_url, redis_prefix, frame):
    asyncio.run(_scenario(gateway, signer, redis_url, redis_prefix, frame))


@pytest.mark.parametrize("frame", [b"\x00\x01", json.dumps({"event": "stop"}).encode()])
def test_a_binary_frame_closes_only_its_own_stream(gateway, signer, redis_url, redis_prefix, frame):
    """Twilio sends text frames only."""
    asyncio.run(_scenario(gateway, signer, redis_url, redis_prefix, frame))


def test_a_close_reason_with_non_ascii_text_stays_valid_utf8(gateway, signer, redis_url, redis_prefix):
    frame = json.dumps({"event": "\u00e9" * 100}, ensure_ascii=False)  # "unknown event 'ééé…'": 216 bytes
    asyncio.run(_scenario(gateway, signer, redis_url, redis_prefix, frame))
