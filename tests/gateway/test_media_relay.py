"""What only the byte-level relay does itself (the FastAPI route leaves it to uvicorn)."""

import asyncio
import base64
import hashlib
import json

import pytest
from gateway.busy_message import assert_busy_once
from gateway.twilio_frames import CALL, connected, media, open_stream, start, start_call
from websockets.exceptions import ConnectionClosed

from helpers.servers import free_port
from helpers.stub_worker import StubWorker
from voicebot_gateway.ws_frames import OP_CLOSE, close_payload, server_frame


async def test_fragmented_message_and_ping_from_twilio(gateway, signer, registry):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        frame = media(0)
        await ws.send(iter([frame[:100], frame[100:250], frame[250:]]))  # one message, three frames
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        assert worker.received[CALL][-1] == frame
        await asyncio.wait_for(await ws.ping(), 5)
        await ws.close()


async def test_binary_frame_closes_the_stream(gateway, signer, registry):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await ws.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == 1008
        await asyncio.wait_for(worker.closed[CALL].wait(), 5)


class SilentWorker:
    """Accepts the stream, then neither answers nor sends anything: a worker on a dead node."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = asyncio.Event()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.accepted.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._accept(reader, writer)
        while await reader.read(65536):
            pass

    async def __aenter__(self) -> "SilentWorker":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()


class FullWorker(SilentWorker):
    """Accepts the stream, closes it with 1013 and hangs up at once, in the same write: the gateway has
    the close frame and the end of the connection before it attaches the worker to the call."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._accept(reader, writer)
        writer.write(server_frame(OP_CLOSE, close_payload(1013, "worker is full")))
        writer.close()


async def test_a_worker_gone_with_1013_before_it_was_attached_gets_the_caller_the_busy_message(
        gateway, signer, registry, twilio_rest):
    async with FullWorker() as full:
        await registry.register("w1", f"ws://127.0.0.1:{full.port}", capacity=1)
        ws = await start_call(gateway, signer)
        await assert_busy_once(ws, twilio_rest)
        assert full.accepted.is_set()


async def test_a_silent_worker_is_declared_lost_and_the_call_moves(gateway, signer, registry):
    # pinged after 0.5 s of silence, lost 0.5 s later (the 1.5 s liveness timeout's ticks)
    async with SilentWorker() as silent, StubWorker("w2") as spare:
        await registry.register("w1", f"ws://127.0.0.1:{silent.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await asyncio.wait_for(silent.accepted.wait(), 5)
        await registry.register("w2", f"ws://127.0.0.1:{spare.port}", capacity=1)
        for seq in range(250):
            await ws.send(media(seq))
            await asyncio.sleep(0.02)
            if CALL in spare.received:
                break
        assert spare.received[CALL][:2] == [connected(), start()]
        await ws.send(media(100))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        await ws.close()
