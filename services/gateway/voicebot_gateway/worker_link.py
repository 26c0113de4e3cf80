"""The gateway's client connection to a bot-worker's `/streams/{call_sid}` in the byte-level relay.

The worker's frames go to Twilio as they came (both hops are server-to-client); only the frame
headers are read, to count messages and to answer close and ping.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from voicebot_core.tickets import TICKET_HEADER
from voicebot_core.vocabulary import CLOSE_NORMAL, CLOSE_TRY_AGAIN
from voicebot_gateway.frame_relay import WORKER_DONE, WORKER_LOST, WORKER_REFUSED, FrameRelay, RelayError
from voicebot_gateway.stream_calls import RELAYED_OUTBOUND
from voicebot_gateway.ws_frames import MAX_HEAD_BYTES, accept_key, new_key, parse_head, upgrade_request

if TYPE_CHECKING:
    from voicebot_gateway.relay_session import RelaySession

WORKER_MAX_FRAME = 2**20  # as the websockets client's max_size on the asgi path


class _Discard:
    """Where the worker's frames go once the call no longer listens to it."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


DISCARD = _Discard()


class WorkerConnection(FrameRelay):
    """The worker's socket of one relayed stream; the session attaches it to Twilio's."""

    MASKED = False
    MEDIA_ONLY = False
    MAX_FRAME = WORKER_MAX_FRAME
    BAD_HEADER = "masked or extended frame from the worker"
    counter = RELAYED_OUTBOUND

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, accept: str) -> None:
        super().__init__(loop)
        self.passing = True  # every data frame, once attached (before, `data_received` holds them)
        self.request = request
        self.accept = accept
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.head = b""
        self.session: RelaySession | None = None
        self.lost = False
        self.lost_reason = ""
        self.grace_until = 0.0  # loop time before which the worker's silence is not a loss (attach)

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, address: str, call_sid: str,
                   ticket: str) -> WorkerConnection:
        url = urlsplit(f"{address}/streams/{call_sid}")
        if url.scheme != "ws" or not url.hostname:
            raise RelayError(f"unsupported worker address {address!r}")
        key = new_key()
        request = upgrade_request(url.path, url.netloc, key, {TICKET_HEADER: ticket})
        transport, conn = await loop.create_connection(lambda: cls(loop, request, accept_key(key).decode()),
                                                       url.hostname, url.port or 80)
        try:
            await conn.handshake
        except BaseException:
            transport.abort()
            raise
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def attach(self, session: RelaySession, twilio: asyncio.Transport) -> None:
        self.session = session
        self.peer = twilio
        self.grace_until = self.loop.time() + session.start_grace_s
        if self.buf:  # the worker spoke (or closed: 1013) before we were attached
            data, self.buf = self.buf, b""
            self.data_received(data)
        if self.closed:  # its socket went away before: the session hears of it now
            self._ended(WORKER_LOST, "connection lost before the call was attached")

    def data_received(self, data: bytes) -> None:
        self.rx = True
        if not self.handshake.done():
            data = self._response(data)
            if not data:
                return
        if self.peer is None or self.lost:  # not attached yet: keep it for then
            self.buf += data
            return
        self._read_frames(data)

    def _response(self, data: bytes) -> bytes:
        """The handshake response; returns what followed it."""
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD_BYTES:
                self._refuse("oversized handshake response")
            return b""
        status, headers = parse_head(self.head[:end])
        rest = self.head[end + 4:]
        self.head = b""
        if status.split(" ")[1:2] != ["101"]:
            self._refuse(f"worker answered {status}")
            return b""
        if headers.get("sec-websocket-accept") != self.accept:
            self._refuse("bad Sec-WebSocket-Accept from the worker")
            return b""
        self.handshake.set_result(None)
        return rest

    def _refuse(self, reason: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(RelayError(reason))
        self.transport.abort()

    def _frame(self, b0: int, raw: bytes, payload: bytes) -> bool:
        return self._control(b0 & 0x0F, payload)  # data frames all go on: only control frames come here

    def _peer_closed(self, code: int) -> None:
        how = WORKER_DONE if code == CLOSE_NORMAL else WORKER_REFUSED if code == CLOSE_TRY_AGAIN else WORKER_LOST
        self._ended(how, f"worker closed with {code}")

    def _peer_gone(self, count: int) -> None:  # Twilio's socket is closed: the call is ending
        self.peer = DISCARD

    def _protocol_error(self, reason: str) -> None:
        self._fail(reason)

    def _too_large(self, length: int) -> None:
        self._fail(f"frame of {length} bytes from the worker")

    def _silent(self) -> None:
        self._fail("no pong from the worker in time")

    def _fail(self, reason: str) -> None:
        self._ended(WORKER_LOST, reason)
        self.transport.abort()

    def _ended(self, how: str, reason: str) -> None:
        if self.lost:
            return
        self.lost = True
        self.lost_reason = reason
        self.flush_counter()
        if self.session is not None:
            self.session.worker_ended(self, how)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(RelayError(f"connection lost during the handshake: {exc}"))
        elif self.peer is None:  # not attached yet: `attach` reads what it sent (a close frame) first
            return
        self._ended(WORKER_LOST, f"connection lost without a close frame ({exc})")

    def keepalive(self) -> None:
        """Every third of the liveness timeout (the session's tick): ping a worker silent since the last
        tick; one still silent at the next is lost."""
        if self.lost:
            return
        if self.loop.time() < self.grace_until:
            self.ping_out = False  # starting the call (VOICEBOT_GATEWAY_WORKER_START_GRACE_S): pinged, not lost
        super().keepalive()

    def close(self, code: int) -> None:
        """Close frame now, the socket when the worker answers (or in 3 s)."""
        if self.lost:
            return
        self.session = None  # whatever the worker says now no longer concerns the call
        self.peer = DISCARD
        self._close(code)
