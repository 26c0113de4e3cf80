"""The media path without ASGI: Twilio's stream WebSocket relayed to a bot-worker frame by frame.

`StreamRelayProtocol` is uvicorn's WebSocket protocol class in the gateway process (`ws=` in
`voicebot_core.serving.serve`). uvicorn's HTTP parser hands it the upgrade request and the socket;
for `/twilio/stream/{call_sid}` it checks the upgrade's signature, answers the handshake and reads
Twilio's frames, and a `relay_session.RelaySession` runs the call as `stream_relay.twilio_stream`
does (both are `stream_calls.StreamCall`s), with the frames handled at the byte level:

- Twilio -> worker: both hops are client-to-server, so a frame from Twilio (masked with Twilio's
  random key) is a valid frame to the worker as it is. It is unmasked only to check it: a media
  frame of Twilio's shape by `is_plain_media`, anything else by `parse_frame`; then the original
  bytes are written on, several frames of one read in one write (`frame_relay.FrameRelay`).
- worker -> Twilio: both hops are server-to-client (unmasked): the bytes go on as they came; only
  the frame headers are read, to count frames and to answer close and ping (`worker_link`).

No per-frame task, queue, dict or JSON document; counters go to Prometheus once a second. Other
WebSocket paths are handed to uvicorn's own protocol (the FastAPI app).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import unquote

from voicebot_core import metrics
from voicebot_core.logs import call_sid_var
from voicebot_core.signatures import SIGNATURE_HEADER
from voicebot_core.twilio_protocol import (
    MAX_FRAME_CHARS,
    FrameError,
    InboundFrame,
    StreamStart,
    parse_frame,
    parse_start,
)
from voicebot_gateway.frame_relay import FAILED, TWILIO_DONE, FrameRelay, RelayError
from voicebot_gateway.relay_session import RelaySession
from voicebot_gateway.state import GatewayState
from voicebot_gateway.stream_calls import RELAYED_INBOUND, refuse_upgrade
from voicebot_gateway.ws_frames import (
    CLOSE_PROTOCOL,
    CLOSE_SERVICE_RESTART,
    OP_BINARY,
    OP_CONT,
    OP_TEXT,
    client_frame,
    http_error,
    parse_head,
    upgrade_response,
)

log = logging.getLogger(__name__)

STREAM_PATH = re.compile(r"/twilio/stream/([^/?]+)")
PENDING_LIMIT = 500  # frames held while (re-)attaching: 10 s of audio
UNREADABLE = 1 << 62  # after a broken frame header no frame boundary can be found: the rest is skipped


class StreamRelayProtocol(FrameRelay):
    """Twilio's side of one media stream (uvicorn's `ws` protocol class)."""

    MASKED = True
    MEDIA_ONLY = True
    MAX_FRAME = MAX_FRAME_CHARS
    BAD_HEADER = "unmasked or extended frame from the client"
    counter = RELAYED_INBOUND

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(_loop or asyncio.get_event_loop())
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.delegate: asyncio.Protocol | None = None  # another WebSocket path: uvicorn's protocol
        self.upgraded = False
        self._phase = "handshake"
        self.call_sid = ""
        self.session: RelaySession | None = None
        self.frames: list[bytes] = []  # connected and start, as they came
        self.started: asyncio.Future[StreamStart] = self.loop.create_future()
        self.pending: list[bytes] = []  # frames held while no worker is attached
        self.fragments: list[bytes] | None = None
        self.error = FrameError("malformed frame")

    @property
    def phase(self) -> str:
        """handshake, starting, attaching, relaying (frames go to a worker), ended"""
        return self._phase

    @phase.setter
    def phase(self, phase: str) -> None:
        self._phase = phase
        self.passing = phase == "relaying"  # plain media goes on unparsed

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.delegate is not None:
            self.delegate.data_received(data)
        elif not self.upgraded:
            self._upgrade(data)
        else:
            self._read_frames(data)

    def eof_received(self) -> bool | None:
        if self.delegate is not None:
            return self.delegate.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.delegate is not None:
            self.delegate.connection_lost(exc)
            return
        self.closed = True
        self.server_state.connections.discard(self)
        self._end(TWILIO_DONE)
        if not self.started.done():
            self.started.set_exception(RelayError("twilio disconnected"))

    def pause_writing(self) -> None:
        """Twilio reads slower than the worker talks: stop reading the worker (backpressure)."""
        if self.delegate is not None:
            self.delegate.pause_writing()
        else:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self.delegate is not None:
            self.delegate.resume_writing()
        else:
            super().resume_writing()

    def shutdown(self) -> None:
        """uvicorn's shutdown (after the drain): close the stream like uvicorn would (1012)."""
        if self.delegate is not None:
            self.delegate.shutdown()
            return
        self.close(CLOSE_SERVICE_RESTART)
        self._end(TWILIO_DONE)

    # --- handshake ----------------------------------------------------------------------------
    def _upgrade(self, request: bytes) -> None:
        self.upgraded = True
        first, headers = parse_head(request)
        target = first.split(" ")[1]
        match = STREAM_PATH.fullmatch(target.split("?", 1)[0])
        if match is None:  # not a media stream: uvicorn's own protocol and the ASGI app
            from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

            self.delegate = AutoWebSocketsProtocol(config=self.config, server_state=self.server_state,
                                                   app_state=self.app_state)
            self.delegate.connection_made(self.transport)
            self.delegate.data_received(request)
            return
        key = headers.get("sec-websocket-key", "")
        if headers.get("sec-websocket-version") != "13" or not key:
            self._http_error(400, "Bad Request", "not a WebSocket version 13 upgrade")
            return
        state: GatewayState = self.config.app.state.gateway
        self.call_sid = unquote(match.group(1))
        call_sid_var.set(self.call_sid)
        sockname = self.transport.get_extra_info("sockname") or ("", 0)
        host = headers.get("host") or f"{sockname[0]}:{sockname[1]}"
        scheme = "wss" if self.transport.get_extra_info("sslcontext") else "ws"
        peer = self.transport.get_extra_info("peername")  # the socket's peer: X-Forwarded-* count only from a proxy
        reason = refuse_upgrade(state, f"{scheme}://{host}{target}", headers, headers.get(SIGNATURE_HEADER.lower()),
                                peer[0] if isinstance(peer, tuple) else None)
        if reason:
            self._http_error(403, "Forbidden", reason)
            return
        self.transport.write(upgrade_response(key.encode(), self.server_state.default_headers))
        self.server_state.connections.add(self)
        self.phase = "starting"
        self.session = RelaySession(state, self)
        self.session.start(self.server_state.tasks)

    def _http_error(self, status: int, phrase: str, reason: str) -> None:
        self.transport.write(http_error(status, phrase, reason))
        self.transport.close()
        self.phase = "ended"

    # --- frames other than the plain media of a relaying stream ----------------------------------
    def _frame(self, b0: int, raw: bytes, payload: bytes) -> bool:
        """One frame that is not plain media (or not relaying yet). False: stop reading.

        After a malformed frame the stream has ended (`phase`): the frames after it are still read,
        for a close or a ping, and go nowhere.
        """
        opcode = b0 & 0x0F
        if opcode >= 8:
            if not b0 & 0x80 or len(payload) > 125:
                self._protocol_error("bad control frame")
                return False
            return self._control(opcode, payload)
        if self.phase == "ended":  # after stop or an error: nothing more goes anywhere
            return True
        if opcode == OP_BINARY or (opcode == OP_CONT) == (self.fragments is None):
            self._frame_error(FrameError("binary or out-of-order frame"))
            return True
        if not b0 & 0x80:  # a fragment: gather the message, send it on as one frame
            self.fragments = [*(self.fragments or []), payload]
            if sum(map(len, self.fragments)) > MAX_FRAME_CHARS:
                self._frame_error(FrameError("fragmented frame exceeds the size limit"))
            return True
        if self.fragments is not None:
            payload = b"".join([*self.fragments, payload])
            raw = client_frame(OP_TEXT, payload)
            self.fragments = None
        try:
            frame = parse_frame(payload.decode(), started=self.phase not in ("handshake", "starting"))
            if self.phase == "starting":
                self._starting(raw, frame)
                return True
        except (FrameError, UnicodeDecodeError) as exc:
            self._frame_error(exc if isinstance(exc, FrameError) else FrameError(f"frame is not UTF-8: {exc}"))
            return True
        if self.phase == "relaying":
            self._flush(raw, 0, len(raw), 1)
        elif len(self.pending) < PENDING_LIMIT:
            self.pending.append(raw)
        else:
            metrics.FRAMES_DROPPED.labels(reason="no_peer").inc()
        if frame.event == "stop":
            self._end(TWILIO_DONE)
            self.phase = "ended"
        return True

    def _starting(self, raw: bytes, frame: InboundFrame) -> None:
        expected = "start" if self.frames else "connected"
        if frame.event != expected:
            raise FrameError(f"expected {expected}, got {frame.event}")
        self.frames.append(raw)
        if expected == "start":
            start = parse_start(frame)
            self.phase = "attaching"
            if not self.started.done():
                self.started.set_result(start)

    def _peer_closed(self, code: int) -> None:
        self._end(TWILIO_DONE)
        self.phase = "ended"

    def _peer_gone(self, count: int) -> None:  # the worker's loss is on the way
        metrics.FRAMES_DROPPED.labels(reason="no_peer").inc(count)

    def _too_large(self, length: int) -> None:
        self._frame_error(FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME_CHARS}-byte limit"))

    def _frame_error(self, exc: FrameError) -> None:
        self.phase = "ended"
        self.error = exc
        if not self.started.done():
            self.started.set_exception(exc)
        else:
            self._end(FAILED)

    def _protocol_error(self, reason: str) -> None:
        self.unread = UNREADABLE
        self.close(CLOSE_PROTOCOL, reason)
        self._frame_error(FrameError(reason))

    def _end(self, how: str) -> None:
        if self.session is not None:
            self.session.end(how)

    # --- what the session does with this side ----------------------------------------------------
    def attach(self, worker: asyncio.Transport) -> None:
        """Frames go to `worker` from now on: connected, start and what came meanwhile first."""
        worker.write(self.held())
        self.relayed += len(self.pending)
        self.pending = []
        self.peer = worker
        self.phase = "relaying"

    def detach(self) -> None:
        """No worker: Twilio's frames wait in `pending` for the next one."""
        self.peer = None
        if self.phase == "relaying":
            self.phase = "attaching"
        # a worker that stopped reading (frozen) paused our reads (backpressure); its socket is gone
        # without a resume_writing: read on, or the next worker would never get Twilio's frames
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def held(self) -> bytes:
        """What a worker attached now is sent first."""
        return b"".join(self.frames) + b"".join(self.pending)

    def close(self, code: int, reason: str = "") -> None:
        """Close Twilio's side: close frame now, the socket once Twilio answers (or in 3 s)."""
        self._close(code, reason)
