"""A worker that stops answering without closing its socket (SIGSTOP here; a hung node or a cut network
alike): the gateway's liveness pings notice it and the call moves to another worker, on both media paths."""

import asyncio
import base64
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis
from gateway.twilio_frames import CALL, media, start_call

from helpers.stub_worker import StubWorker
from helpers.stub_worker_process import stub_worker_process
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.twilio_protocol import MAX_MEDIA_PAYLOAD_BYTES

pytestmark = pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)

MOVE_WAIT_S = 5.0  # generous: the liveness timeout is 1.5 s; before it, pings took 10 s + 10 s


@contextlib.asynccontextmanager
async def _call_on_a_worker_process(gateway, signer, registry) -> AsyncIterator[tuple]:
    """Twilio's socket of a call on worker w1, a process of its own; w2, a spare, registered after.
    Yields (Twilio's socket, w1's process, w2)."""
    with stub_worker_process("w1") as first:
        async with StubWorker("w2") as spare:
            await registry.register("w1", first.address, capacity=1)
            ws = await start_call(gateway, signer)
            await ws.send(media(0))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"  # w1 has the call
            await registry.register("w2", f"ws://127.0.0.1:{spare.port}", capacity=1)
            yield ws, first, spare
            await ws.close()


async def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _send_media(ws, first_seq: int) -> None:
    """Twilio's audio: a media frame every 20 ms."""
    for seq in range(first_seq, first_seq + 100_000):
        await ws.send(media(seq))
        await asyncio.sleep(0.02)


async def test_a_frozen_workers_call_is_reattached_to_another_worker_within_seconds(
        gateway, signer, registry, redis_url, redis_prefix, request):
    async with _call_on_a_worker_process(gateway, signer, registry) as (ws, frozen, spare):
        os.kill(frozen.pid, signal.SIGSTOP)  # no close frame, no reset: its socket just goes quiet
        stopped = time.monotonic()
        sender = asyncio.create_task(_send_media(ws, 1))
        moved = await _wait_for(lambda: CALL in spare.received, MOVE_WAIT_S)
        print(f"\n{request.node.name}: call moved {time.monotonic() - stopped:.2f} s after the worker was stopped")
        sender.cancel()

        assert moved, f"the call was still on the frozen worker after {MOVE_WAIT_S} s"
        events = redis.Redis.from_url(redis_url, decode_responses=True).lrange(
            RedisKeys(redis_prefix).call_events(CALL), 0, -1)
        assert [e for e in events if '"kind": "reattached"' in e and '"w2"' in e]
        assert sum('"kind": "reattached"' in e for e in events) == 1
        await ws.send(media(100_000))  # the call goes on with the new worker
        assert await _wait_for(lambda: media(100_000) in spare.received[CALL], 5)


@pytest.mark.start_grace(3.0)
async def test_a_worker_silent_while_it_starts_the_call_keeps_it_for_the_start_grace(gateway, signer, registry):
    """A worker may block while it builds a call's pipeline (a provider loading a model per call)."""
    async with _call_on_a_worker_process(gateway, signer, registry) as (ws, frozen, spare):
        os.kill(frozen.pid, signal.SIGSTOP)
        sender = asyncio.create_task(_send_media(ws, 1))
        moved_early = await _wait_for(lambda: CALL in spare.received, 2.0)  # the liveness timeout alone: 1.5 s
        moved = moved_early or await _wait_for(lambda: CALL in spare.received, MOVE_WAIT_S)
        sender.cancel()
        assert not moved_early, "a worker starting its call was declared lost within the start grace"
        assert moved, "a worker still silent after the start grace kept the call"


def _big_media(seq: int) -> str:
    """A media frame with about the largest payload the gateway accepts (16 KiB of audio)."""
    frame = json.loads(media(seq))
    frame["media"]["payload"] = base64.b64encode(bytes([0xFF]) * (MAX_MEDIA_PAYLOAD_BYTES // 3 * 3)).decode()
    return json.dumps(frame)


async def _discard(ws) -> None:
    with contextlib.suppress(Exception):
        while True:
            await ws.recv()


async def test_a_frozen_worker_whose_socket_filled_up_does_not_hold_up_the_call(gateway, signer, registry,
                                                                                 request):
    """The frozen worker reads nothing: what the gateway writes to it piles up until the relay stops
    reading Twilio (backpressure). Once the call moves, Twilio's frames are read again, for the new worker."""
    async with _call_on_a_worker_process(gateway, signer, registry) as (ws, frozen, spare):
        reader = asyncio.create_task(_discard(ws))  # the echoes must not push back on the new worker
        os.kill(frozen.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        big, sent = _big_media(1), 0
        with contextlib.suppress(TimeoutError):  # a send that waits: the gateway stopped reading us
            while time.monotonic() - stopped < 0.8:
                await asyncio.wait_for(ws.send(big), 0.2)
                sent += len(big)
        print(f"\n{request.node.name}: {sent / 1e6:.1f} MB sent while the worker was stopped")

        assert await _wait_for(lambda: CALL in spare.received, MOVE_WAIT_S), "the call did not move"
        await asyncio.wait_for(ws.send(media(100_000)), 5)
        assert await _wait_for(lambda: media(100_000) in spare.received[CALL], 5)
        reader.cancel()
