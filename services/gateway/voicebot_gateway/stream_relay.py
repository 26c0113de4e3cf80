"""WS /twilio/stream/{call_sid}: hold Twilio's side of the stream, relay it to a bot-worker.

The gateway reads `connected` and `start`, reserves a worker slot, pins the call to that
worker and relays every message unchanged in both directions. Twilio's side stays with the
gateway, so when a worker dies mid-call (abnormal close) the stream is re-attached to another
worker, which resumes from the conversation checkpoint. The call itself is `stream_calls.StreamCall`,
shared with the byte-level relay (media_relay.py); this route moves the frames through ASGI and
the `websockets` client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from voicebot_core import metrics
from voicebot_core.logs import call_sid_var
from voicebot_core.signatures import SIGNATURE_HEADER
from voicebot_core.tickets import TICKET_HEADER
from voicebot_core.twilio_protocol import FrameError, StreamStart, parse_frame, parse_start
from voicebot_core.vocabulary import CLOSE_NORMAL, CLOSE_POLICY
from voicebot_gateway.signed_requests import scope_peer
from voicebot_gateway.state import GatewayState
from voicebot_gateway.stream_calls import (
    RELAYED_INBOUND,
    RELAYED_OUTBOUND,
    RelayEnd,
    StreamCall,
    refuse_upgrade,
    worker_closed,
)
from voicebot_gateway.ws_frames import close_reason

log = logging.getLogger(__name__)
router = APIRouter(tags=["twilio"])

LIVENESS_PINGS = 3  # pings to a worker per liveness timeout


class StreamClosed(Exception):
    """Twilio's side ended (stop, hang-up): no re-attach."""


class WorkerLost(Exception):
    """The worker's side closed abnormally while Twilio's is still open: re-attach elsewhere."""

    def __init__(self, end: RelayEnd, reason: str) -> None:
        super().__init__(reason)
        self.end = end  # LOST, or REFUSED for a 1013


def _worker_close_code(exc: ConnectionClosed) -> int | None:
    return exc.rcvd.code if exc.rcvd is not None else None


async def _receive_text(ws: WebSocket) -> str:
    """The next text frame from Twilio; a binary frame is a FrameError (Twilio sends only text)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise FrameError("binary frame")
    return text


async def _pump_twilio_to_worker(ws: WebSocket, worker: ClientConnection) -> None:
    while True:
        try:
            text = await _receive_text(ws)
        except WebSocketDisconnect:
            raise StreamClosed("twilio disconnected") from None
        frame = parse_frame(text, started=True)  # FrameError ends this call only
        try:
            await worker.send(text)
        except ConnectionClosed as exc:
            metrics.FRAMES_DROPPED.labels(reason="no_peer").inc()
            end = worker_closed(_worker_close_code(exc))
            if end is RelayEnd.DONE:
                raise StreamClosed("worker ended the call") from None
            raise WorkerLost(end, str(exc)) from None
        RELAYED_INBOUND.inc()
        if frame.event == "stop":
            raise StreamClosed("twilio sent stop")


async def _pump_worker_to_twilio(ws: WebSocket, worker: ClientConnection) -> None:
    async for message in worker:
        if isinstance(message, bytes):
            message = message.decode()
        await ws.send_text(message)
        RELAYED_OUTBOUND.inc()


async def _watch_worker(worker: ClientConnection, timeout: float, start_grace: float) -> None:
    """Ping the worker every third of `timeout`; returns when a ping is not answered by the time `timeout`
    has passed since the last pong. A connection that closes is the pumps' to report.

    Not websockets' own keepalive: on a missing pong it starts a closing handshake and waits
    `close_timeout` for the frozen worker to answer it, and its ping waits unbounded on a full send buffer.
    """
    interval = timeout / LIVENESS_PINGS
    loop = asyncio.get_running_loop()
    grace_until = loop.time() + start_grace  # starting the call: a silence is not yet a loss
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(interval)
            try:
                # the send too: its buffer may be full
                async with asyncio.timeout(max(timeout - interval, grace_until - loop.time())):
                    await (await worker.ping())
            except TimeoutError:
                return
    await asyncio.Future()  # closed: the pumps end and say how


async def _relay(ws: WebSocket, worker: ClientConnection, liveness_timeout: float, start_grace: float) -> RelayEnd:
    """Relay until one side ends, or the worker stops answering pings."""
    up = asyncio.create_task(_pump_twilio_to_worker(ws, worker))
    down = asyncio.create_task(_pump_worker_to_twilio(ws, worker))
    watch = asyncio.create_task(_watch_worker(worker, liveness_timeout, start_grace))
    done, pending = await asyncio.wait({up, down, watch}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if done == {watch}:
        worker.transport.abort()  # no closing handshake with a worker that does not answer
        log.warning("worker stream broke: no pong from the worker in %s s", liveness_timeout)
        return RelayEnd.LOST
    if up in done:
        exc = up.exception()
        if isinstance(exc, StreamClosed):
            await worker.close()
            return RelayEnd.DONE
        if isinstance(exc, WorkerLost):
            log.warning("worker stream broke: %s", exc)
            return exc.end
        if exc is not None:
            raise exc
    # the worker side ended first
    exc = down.exception() if down in done else None
    code = worker.close_code
    if exc is None and code == CLOSE_NORMAL:
        return RelayEnd.DONE
    log.warning("worker stream ended abnormally (code %s, %s)", code, exc)
    return RelayEnd.LOST if code == CLOSE_NORMAL else worker_closed(code)  # 1000 with an error: lost too


class AsgiStreamCall(StreamCall[ClientConnection]):
    """The call of a stream served by this route: frames through ASGI and the websockets client."""

    refused = (OSError, TimeoutError, InvalidStatus, WebSocketException)
    gone = (WebSocketDisconnect, ConnectionClosed)

    def __init__(self, state: GatewayState, call_sid: str, ws: WebSocket) -> None:
        super().__init__(state, call_sid)
        self.ws = ws
        self.first_frames: tuple[str, str] = ("", "")  # connected and start, forwarded as they came

    async def read_start(self) -> StreamStart:
        connected_text = await _receive_text(self.ws)
        frame = parse_frame(connected_text, started=False)
        if frame.event != "connected":
            raise FrameError(f"expected connected, got {frame.event}")
        start_text = await _receive_text(self.ws)
        frame = parse_frame(start_text, started=False)
        if frame.event != "start":
            raise FrameError(f"expected start, got {frame.event}")
        self.first_frames = (connected_text, start_text)
        return parse_start(frame)

    async def connect(self, address: str, ticket: str) -> ClientConnection:
        timeout = self.state.settings.gateway_worker_connect_timeout_s
        return await asyncio.wait_for(
            connect(f"{address}/streams/{self.call_sid}", max_size=2**20, open_timeout=timeout,
                    ping_interval=None, additional_headers={TICKET_HEADER: ticket}),  # `_watch_worker` pings
            timeout=timeout + 1,
        )

    async def relay(self, worker: ClientConnection) -> RelayEnd:
        try:
            for text in self.first_frames:
                await worker.send(text)
        except ConnectionClosed as exc:  # the worker closed before `start` (1013: full or draining)
            log.warning("worker closed the stream before start: %s", exc)
            return worker_closed(_worker_close_code(exc))
        settings = self.state.settings
        return await _relay(self.ws, worker, settings.gateway_worker_liveness_timeout_s,
                            settings.gateway_worker_start_grace_s)

    async def detach(self, worker: ClientConnection) -> None:
        await worker.close()

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, reason=close_reason(reason) or None)


@router.websocket("/twilio/stream/{call_sid}")
async def twilio_stream(ws: WebSocket, call_sid: str) -> None:
    state: GatewayState = ws.app.state.gateway
    call_sid_var.set(call_sid)
    reason = refuse_upgrade(state, str(ws.url), ws.headers, ws.headers.get(SIGNATURE_HEADER), scope_peer(ws.scope))
    if reason:
        await ws.close(code=CLOSE_POLICY, reason=close_reason(reason))
        return
    await ws.accept()
    await AsgiStreamCall(state, call_sid, ws).run()
