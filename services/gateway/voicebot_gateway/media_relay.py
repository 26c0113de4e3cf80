"""The media path without ASGI: Twilio's stream WebSocket relayed to a bot-worker frame by frame.

`StreamRelayProtocol` is uvicorn's WebSocket protocol class in the gateway process (`ws=` in
`voicebot_core.serving.serve`). uvicorn's HTTP parser hands it the upgrade request and the socket;
for `/twilio/stream/{call_sid}` it does what `stream_relay.twilio_stream` does (signature check,
`connected`/`start`, slot reservation, ticket, re-attach on worker loss, busy message, drain
accounting, the same metrics and call events) with the frames handled at the byte level:

- Twilio -> worker: both hops are client-to-server, so a frame from Twilio (masked with Twilio's
  random key) is a valid frame to the worker as it is. It is unmasked only to check it: a media
  frame of Twilio's shape by `is_plain_media`, anything else by `parse_frame`; then the original
  bytes are written on, several frames of one read in one write.
- worker -> Twilio: both hops are server-to-client (unmasked): the bytes go on as they came; only
  the frame headers are read, to count frames and to answer close and ping.

No per-frame task, queue, dict or JSON document; counters go to Prometheus once a second. Other
WebSocket paths are handed to uvicorn's own protocol (the FastAPI app).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import struct
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry.trace import SpanKind

from voicebot_core import metrics, telemetry
from voicebot_core.logs import call_sid_var
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureError, public_url
from voicebot_core.tickets import TICKET_HEADER, issue_ticket
from voicebot_core.twilio_protocol import (
    MAX_FRAME_CHARS,
    FrameError,
    StreamStart,
    is_plain_media,
    parse_frame,
    parse_start,
)
from voicebot_core.vocabulary import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_POLICY
from voicebot_gateway.state import GatewayState
from voicebot_gateway.stream_relay import RELAYED_INBOUND, RELAYED_OUTBOUND, START_TIMEOUT_S, say_busy

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in the websockets wheels
    from websockets.utils import apply_mask

log = logging.getLogger(__name__)

STREAM_PATH = re.compile(r"/twilio/stream/([^/?]+)")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CLOSE_PROTOCOL = 1002
CLOSE_GOING_AWAY = 1001
CLOSE_SERVICE_RESTART = 1012
WORKER_MAX_FRAME = 2**20  # as the websockets client's max_size before
PENDING_LIMIT = 500  # frames held while (re-)attaching: 10 s of audio
TICK_S = 1.0  # metrics flush
WORKER_PING_TICKS = 10  # worker silent this long: ping; silent as long again: lost (ping_interval/timeout 10 s)
TWILIO_PING_TICKS = 20  # Twilio's side, as uvicorn's ws_ping_interval/timeout 20 s

# how a relay ended
TWILIO_DONE = "twilio"  # stop, close or hang-up: no re-attach
WORKER_DONE = "worker"  # the worker closed normally: the call is over
WORKER_LOST = "lost"  # abnormal close, reset or silence: re-attach
FAILED = "failed"  # a malformed frame from Twilio: `error` says which


class RelayError(Exception):
    pass


def _header(opcode: int, length: int, masked: bool) -> bytes:
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((0x80 | opcode, mask_bit | length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, length)


def server_frame(opcode: int, payload: bytes = b"") -> bytes:
    return _header(opcode, len(payload), False) + payload


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    key = os.urandom(4)
    return _header(opcode, len(payload), True) + key + apply_mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:120]


def _close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def _accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


class StreamRelayProtocol(asyncio.Protocol):
    """Twilio's side of one media stream (uvicorn's `ws` protocol class)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.delegate: asyncio.Protocol | None = None  # another WebSocket path: uvicorn's protocol
        self.upgraded = False
        self.buf = b""
        self.phase = "handshake"  # handshake, starting, attaching, relaying, ended
        self.call_sid = ""
        self.frames: list[tuple[bytes, str]] = []  # connected and start: raw frame, text
        self.started: asyncio.Future[StreamStart] = self.loop.create_future()
        self.ended: asyncio.Future[str] = self.loop.create_future()
        self.pending: list[bytes] = []  # frames held while no worker is attached
        self.fragments: list[bytes] | None = None
        self.worker: WorkerConnection | None = None
        self.worker_transport: asyncio.Transport | None = None
        self.close_sent = False
        self.closed = False
        self.inbound = 0  # frames relayed since the last flush
        self.rx = True  # Twilio sent something since the last keepalive check
        self.idle_ticks = 0
        self.ping_out = False
        self.ticks = 0
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.error = FrameError("malformed frame")

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.delegate is not None:
            self.delegate.data_received(data)
            return
        if not self.upgraded:
            self._upgrade(data)
            return
        if self.buf:
            data = self.buf + data
            self.buf = b""
        n = len(data)
        pos = 0
        run = -1  # start of a run of checked frames to write on in one go
        relaying = self.phase == "relaying"
        relayed = 0
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[head] << 8) | data[head + 1]
                head += 2
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[head:head + 8], "big")
                head += 8
            if not b1 & 0x80 or b0 & 0x70:
                self._flush(data, run, pos, relayed)
                self._protocol_error("unmasked or extended frame from the client")
                return
            if length > MAX_FRAME_CHARS:
                self._flush(data, run, pos, relayed)
                self._frame_error(FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME_CHARS}-byte limit"))
                return
            end = head + 4 + length
            if end > n:
                break
            if relaying and b0 == 0x81 and is_plain_media(apply_mask(data[head + 4:end], data[head:head + 4])):
                if run < 0:
                    run = pos
                relayed += 1
                pos = end
                continue
            self._flush(data, run, pos, relayed)
            run = -1
            relayed = 0
            if not self._frame(b0, data[pos:end], apply_mask(data[head + 4:end], data[head:head + 4])):
                return
            relaying = self.phase == "relaying"
            pos = end
        self._flush(data, run, pos, relayed)
        if pos < n:
            self.buf = data[pos:]
        self.rx = True

    def _flush(self, data: bytes, run: int, pos: int, relayed: int) -> None:
        if run < 0:
            return
        try:
            self.worker_transport.write(data if run == 0 and pos == len(data) else data[run:pos])
        except RuntimeError:  # uvloop: the worker's socket is already closed (its loss is on the way)
            metrics.FRAMES_DROPPED.labels(reason="no_peer").inc(relayed)
            return
        self.inbound += relayed

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
        elif self.worker_transport is not None and not self.worker_transport.is_closing():
            self.worker_transport.pause_reading()

    def resume_writing(self) -> None:
        if self.delegate is not None:
            self.delegate.resume_writing()
        elif self.worker_transport is not None and not self.worker_transport.is_closing():
            self.worker_transport.resume_reading()

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
        lines = request.split(b"\r\n")
        target = lines[0].split(b" ")[1].decode("latin-1")
        match = STREAM_PATH.fullmatch(target.split("?", 1)[0])
        if match is None:  # not a media stream: uvicorn's own protocol and the ASGI app
            from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

            self.delegate = AutoWebSocketsProtocol(config=self.config, server_state=self.server_state,
                                                   app_state=self.app_state)
            self.delegate.connection_made(self.transport)
            self.delegate.data_received(request)
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        key = headers.get("sec-websocket-key", "")
        if headers.get("sec-websocket-version") != "13" or not key:
            self._http_error(400, "Bad Request", "not a WebSocket version 13 upgrade")
            return
        state: GatewayState = self.config.app.state.gateway
        self.call_sid = unquote(match.group(1))
        call_sid_var.set(self.call_sid)
        reason = self._check_signature(state, target, headers)
        if reason:
            metrics.REJECTED_SIGNATURES.labels(endpoint="stream").inc()
            log.warning("rejected stream upgrade: %s", reason)
            self._http_error(403, "Forbidden", reason)
            return
        response = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                    b"Sec-WebSocket-Accept: " + _accept_key(key.encode()) + b"\r\n"]
        response += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        self.transport.write(b"".join(response) + b"\r\n")
        self.server_state.connections.add(self)
        self.phase = "starting"
        self.task = self.loop.create_task(self._run(state))
        self.server_state.tasks.add(self.task)
        self.task.add_done_callback(self.server_state.tasks.discard)
        self.timer = self.loop.call_later(TICK_S, self._tick)

    def _check_signature(self, state: GatewayState, target: str, headers: dict[str, str]) -> str | None:
        if not state.settings.gateway_validate_signatures:
            return None
        sockname = self.transport.get_extra_info("sockname") or ("", 0)
        host = headers.get("host") or f"{sockname[0]}:{sockname[1]}"
        scheme = "wss" if self.transport.get_extra_info("sslcontext") else "ws"
        url = public_url(request_url=f"{scheme}://{host}{target}", headers=headers,
                         public_base_url=state.settings.gateway_public_base_url or None, websocket=True)
        try:
            state.signatures.check(url, {}, headers.get(SIGNATURE_HEADER.lower()))
        except SignatureError as exc:
            return str(exc)
        return None

    def _http_error(self, status: int, phrase: str, reason: str) -> None:
        body = reason.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        self.transport.close()
        self.phase = "ended"

    # --- frames other than the plain media of a relaying stream ----------------------------------
    def _frame(self, b0: int, raw: bytes, payload: bytes) -> bool:
        """One frame that is not plain media (or not relaying yet). False: stop reading."""
        opcode = b0 & 0x0F
        if opcode >= 8:
            if not b0 & 0x80 or len(payload) > 125:
                self._protocol_error("bad control frame")
                return False
            if opcode == OP_CLOSE:
                if not self.close_sent:
                    self.close_sent = True
                    self._send(server_frame(OP_CLOSE, payload[:2]))
                self.transport.close()
                self._end(TWILIO_DONE)
                self.phase = "ended"
                return False
            if opcode == OP_PING:
                self._send(server_frame(OP_PONG, payload))
            return True
        if self.phase == "ended":  # after stop or an error: nothing more goes anywhere
            return True
        if opcode == OP_BINARY or (opcode == OP_CONT) == (self.fragments is None):
            self._frame_error(FrameError("binary or out-of-order frame"))
            return False
        if not b0 & 0x80:  # a fragment: gather the message, send it on as one frame
            self.fragments = [*(self.fragments or []), payload]
            if sum(map(len, self.fragments)) > MAX_FRAME_CHARS:
                self._frame_error(FrameError("fragmented frame exceeds the size limit"))
                return False
            return True
        if self.fragments is not None:
            payload = b"".join([*self.fragments, payload])
            raw = client_frame(OP_TEXT, payload)
            self.fragments = None
        try:
            text = payload.decode()
            frame = parse_frame(text, started=self.phase not in ("handshake", "starting"))
            if self.phase == "starting":
                self._starting(raw, text, frame)
                return True
        except (FrameError, UnicodeDecodeError) as exc:
            self._frame_error(exc if isinstance(exc, FrameError) else FrameError(f"frame is not UTF-8: {exc}"))
            return False
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

    def _starting(self, raw: bytes, text: str, frame: Any) -> None:
        expected = "start" if self.frames else "connected"
        if frame.event != expected:
            raise FrameError(f"expected {expected}, got {frame.event}")
        self.frames.append((raw, text))
        if expected == "start":
            start = parse_start(frame)
            self.phase = "attaching"
            if not self.started.done():
                self.started.set_result(start)

    def _frame_error(self, exc: FrameError) -> None:
        self.phase = "ended"
        self.error = exc
        if not self.started.done():
            self.started.set_exception(exc)
        elif not self.ended.done():
            self.ended.set_result(FAILED)

    def _protocol_error(self, reason: str) -> None:
        self.close(CLOSE_PROTOCOL, reason)
        self._frame_error(FrameError(reason))

    def _send(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def _end(self, how: str) -> None:
        if not self.ended.done():
            self.ended.set_result(how)

    def close(self, code: int, reason: str = "") -> None:
        """Close Twilio's side: close frame now, the socket once Twilio answers (or in 3 s)."""
        if self.close_sent or self.transport.is_closing():
            return
        self.close_sent = True
        self.transport.write(server_frame(OP_CLOSE, close_payload(code, reason)))
        self.loop.call_later(3.0, self._abort)

    def _abort(self) -> None:
        if not self.closed:
            self.transport.abort()

    # --- keepalive and metrics ------------------------------------------------------------------
    def _tick(self) -> None:
        if self.inbound:
            RELAYED_INBOUND.inc(self.inbound)
            self.inbound = 0
        worker = self.worker
        if worker is not None:
            worker.flush()
        if self.closed:
            return
        self.ticks += 1
        if self.ticks % WORKER_PING_TICKS == 0 and worker is not None:
            worker.keepalive()
        if self.ticks % TWILIO_PING_TICKS == 0:
            if self.rx:
                self.rx, self.ping_out = False, False
            elif self.ping_out:  # no pong in time
                self.transport.abort()
            else:
                self.ping_out = True
                self._send(server_frame(OP_PING, b"ka"))
        self.timer = self.loop.call_later(TICK_S, self._tick)

    # --- the call -------------------------------------------------------------------------------
    async def _run(self, state: GatewayState) -> None:
        call_sid = self.call_sid
        state.stream_opened()
        metrics.STREAMS_ACTIVE.inc()
        started_at = time.monotonic()
        worker_id = ""
        try:
            try:
                start = await asyncio.wait_for(asyncio.shield(self.started), START_TIMEOUT_S)
            except (FrameError, TimeoutError) as exc:
                raise FrameError(f"stream did not start: {exc}") from None
            if start.call_sid != call_sid:
                raise FrameError(f"start.callSid {start.call_sid} does not match the stream URL")
            with telemetry.span("gateway.stream", kind=SpanKind.SERVER, parent=start.custom_parameters,
                                attrs={"call.sid": call_sid,
                                       "call.direction": start.custom_parameters.get("direction")}):
                call = await state.calls.record(call_sid)
                preferred = call.worker_id if call else ""
                skip: set[str] = set()
                attached_once = False
                while True:
                    opened = await self._open_worker(state, preferred, skip)
                    if opened is None:
                        if not attached_once:
                            await say_busy(state, call_sid)
                        else:
                            await state.calls.add_event(call_sid, "failover-failed")
                        self.close(CLOSE_NORMAL)
                        return
                    worker_id, worker = opened
                    await state.calls.upsert(call_sid, worker_id=worker_id, stream_sid=start.stream_sid,
                                             status="in-progress")
                    await state.calls.add_event(call_sid, "reattached" if attached_once else "stream-attached",
                                                worker_id=worker_id)
                    if not attached_once:
                        metrics.CALL_SETUP.observe(time.monotonic() - started_at)
                    log.info("call attached to worker %s", worker_id)
                    attached_once = True
                    try:
                        how = await self._relay(worker)
                    finally:
                        self._detach(worker)
                        await state.registry.release(worker_id, call_sid)
                    if how != WORKER_LOST:
                        break
                    log.warning("worker stream broke: %s", worker.lost_reason)
                    skip.add(worker_id)
                    preferred = ""
                self.close(CLOSE_NORMAL)
        except FrameError as exc:
            metrics.STREAM_ERRORS.labels(reason="bad_frame").inc()
            metrics.FRAMES_DROPPED.labels(reason="malformed").inc()
            log.warning("closing stream: %s", exc)
            await state.calls.add_event(call_sid, "stream-error", reason=str(exc))
            self.close(CLOSE_POLICY, str(exc)[:120])
        except RelayError:
            pass
        except Exception:
            metrics.STREAM_ERRORS.labels(reason="internal").inc()
            log.exception("stream relay failed")
            self.close(CLOSE_INTERNAL_ERROR)
        finally:
            try:
                if self.worker is not None:
                    self._detach(self.worker)
                if worker_id:
                    await state.registry.release(worker_id, call_sid)
                await state.calls.add_event(call_sid, "stream-ended", worker_id=worker_id)
            except Exception as exc:  # Redis trouble must not leave the stream counted (drain waits on it)
                log.error("could not record the end of the stream: %s", exc)
            finally:
                metrics.STREAMS_ACTIVE.dec()
                state.stream_closed()
                self._tick_final()

    def _tick_final(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.inbound:
            RELAYED_INBOUND.inc(self.inbound)
            self.inbound = 0

    async def _relay(self, worker: WorkerConnection) -> str:
        """Attach the worker, send it connected, start and what came meanwhile; wait for the end."""
        if self.ended.done():  # Twilio left (or broke a frame) while we were attaching
            if self.ended.result() == FAILED:
                raise self.error
            if self.pending:  # what came before the stop
                worker.transport.write(b"".join(raw for raw, _ in self.frames) + b"".join(self.pending))
            worker.close(CLOSE_NORMAL)
            return self.ended.result()
        self.worker = worker
        self.worker_transport = worker.transport
        worker.attach(self)
        held, self.pending = self.pending, []
        worker.transport.write(b"".join(raw for raw, _ in self.frames) + b"".join(held))
        self.inbound += len(held)
        self.phase = "relaying"
        how = await asyncio.shield(self.ended)
        if how == FAILED:
            raise self.error
        if how == TWILIO_DONE:
            worker.close(CLOSE_NORMAL)
        return how

    def _detach(self, worker: WorkerConnection) -> None:
        worker.flush()
        if self.worker is worker:
            self.worker = None
            self.worker_transport = None
            if self.phase == "relaying":
                self.phase = "attaching"
        worker.close(CLOSE_NORMAL)

    def worker_ended(self, worker: WorkerConnection, how: str) -> None:
        """The worker's side ended (called by WorkerConnection)."""
        if worker is not self.worker or self.ended.done():
            return
        self.worker_transport = None
        if self.phase == "relaying":
            self.phase = "attaching"  # Twilio's frames wait in `pending` for the next worker
        self.ended.set_result(how)
        if how == WORKER_LOST:  # what Twilio does from now on concerns the next worker
            self.ended = self.loop.create_future()

    async def _open_worker(self, state: GatewayState, preferred: str,
                           skip: set[str]) -> tuple[str, WorkerConnection] | None:
        """Reserve a slot and connect; a worker that refuses (full, draining, gone) is skipped."""
        call_sid = self.call_sid
        timeout = state.settings.gateway_worker_connect_timeout_s
        for _ in range(state.settings.gateway_worker_attempts):
            reservation = await state.registry.reserve(call_sid, preferred_worker_id=preferred, skip=skip)
            if reservation is None:
                return None
            ticket = issue_ticket(state.settings.stream_ticket_secret.get_secret_value(), call_sid,
                                  reservation.worker_id)
            try:
                conn = await asyncio.wait_for(
                    WorkerConnection.open(self.loop, reservation.address, call_sid, ticket), timeout)
                return reservation.worker_id, conn
            except (OSError, TimeoutError, RelayError) as exc:
                log.warning("worker %s refused call: %s", reservation.worker_id, exc)
                await state.registry.release(reservation.worker_id, call_sid)
                skip.add(reservation.worker_id)
                preferred = ""
        return None


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


_DISCARD = _Discard()


class WorkerConnection(asyncio.Protocol):
    """The gateway's client connection to a bot-worker's `/streams/{call_sid}`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, accept: bytes) -> None:
        self.loop = loop
        self.request = request
        self.accept = accept
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.head = b""
        self.buf = b""
        self.relay: StreamRelayProtocol | None = None
        self.twilio: asyncio.Transport | None = None
        self.outbound = 0  # frames relayed since the last flush
        self.rx = False
        self.ping_out = False
        self.close_sent = False
        self.lost = False
        self.lost_reason = ""

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, address: str, call_sid: str,
                   ticket: str) -> WorkerConnection:
        url = urlsplit(f"{address}/streams/{call_sid}")
        if url.scheme != "ws" or not url.hostname:
            raise RelayError(f"unsupported worker address {address!r}")
        key = base64.b64encode(os.urandom(16))
        request = (f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{TICKET_HEADER}: {ticket}\r\n\r\n").encode()
        transport, conn = await loop.create_connection(lambda: cls(loop, request, _accept_key(key)),
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

    def attach(self, relay: StreamRelayProtocol) -> None:
        self.relay = relay
        self.twilio = relay.transport
        if self.buf:  # the worker spoke before we were attached
            data, self.buf = self.buf, b""
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        self.rx = True
        if not self.handshake.done():
            data = self._response(data)
            if not data:
                return
        if self.buf:
            data = self.buf + data
            self.buf = b""
        twilio = self.twilio
        if twilio is None or self.lost:
            self.buf = data
            return
        n = len(data)
        pos = 0
        run = -1
        count = 0
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[head] << 8) | data[head + 1]
                head += 2
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[head:head + 8], "big")
                head += 8
            if b1 & 0x80 or length > WORKER_MAX_FRAME:
                self._fail("masked or oversized frame from the worker")
                return
            end = head + length
            if end > n:
                break
            if b0 & 0x0F < 8:  # data: goes on as it came
                if run < 0:
                    run = pos
                if b0 & 0x80:
                    count += 1
                pos = end
                continue
            if run >= 0:
                with contextlib.suppress(RuntimeError):  # see below
                    twilio.write(data[run:pos])
                run = -1
            if not self._control(b0 & 0x0F, data[head:end]):
                self.outbound += count
                return
            pos = end
        if run >= 0:
            try:
                twilio.write(data if run == 0 and pos == n else data[run:pos])
            except RuntimeError:  # uvloop: Twilio's socket is already closed (the call is ending)
                self.twilio = _DISCARD
                return
        self.outbound += count
        if pos < n:
            self.buf = data[pos:]

    def _response(self, data: bytes) -> bytes:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 16384:
                self._refuse("oversized handshake response")
            return b""
        head, rest = self.head[:end], self.head[end + 4:]
        self.head = b""
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if status.split(" ")[1:2] != ["101"]:
            self._refuse(f"worker answered {status}")
            return b""
        headers = dict(line.partition(b":")[::2] for line in head.split(b"\r\n")[1:])
        headers = {name.strip().lower(): value.strip() for name, value in headers.items()}
        if headers.get(b"sec-websocket-accept") != self.accept:
            self._refuse("bad Sec-WebSocket-Accept from the worker")
            return b""
        self.handshake.set_result(None)
        return rest

    def _refuse(self, reason: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(RelayError(reason))
        self.transport.abort()

    def _control(self, opcode: int, payload: bytes) -> bool:
        if opcode == OP_CLOSE:
            code = _close_code(payload)
            if not self.close_sent:
                self.close_sent = True
                self._write(client_frame(OP_CLOSE, payload[:2]))
            self.transport.close()
            self._ended(WORKER_DONE if code == CLOSE_NORMAL else WORKER_LOST, f"worker closed with {code}")
            return False
        if opcode == OP_PING:
            self._write(client_frame(OP_PONG, payload))
        elif opcode == OP_PONG:
            self.ping_out = False
        return True

    def _fail(self, reason: str) -> None:
        self._ended(WORKER_LOST, reason)
        self.transport.abort()

    def _ended(self, how: str, reason: str) -> None:
        if self.lost:
            return
        self.lost = True
        self.lost_reason = reason
        self.flush()
        if self.relay is not None:
            self.relay.worker_ended(self, how)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(RelayError(f"connection lost during the handshake: {exc}"))
        self._ended(WORKER_LOST, f"connection lost without a close frame ({exc})")

    def pause_writing(self) -> None:
        """The worker reads slower than Twilio talks: stop reading Twilio (backpressure)."""
        if self.twilio is not None and not self.twilio.is_closing():
            self.twilio.pause_reading()

    def resume_writing(self) -> None:
        if self.twilio is not None and not self.twilio.is_closing():
            self.twilio.resume_reading()

    def flush(self) -> None:
        if self.outbound:
            RELAYED_OUTBOUND.inc(self.outbound)
            self.outbound = 0

    def keepalive(self) -> None:
        """Every 10 s: ping a silent worker; one still silent 10 s later is lost."""
        if self.lost:
            return
        if self.rx:
            self.rx, self.ping_out = False, False
        elif self.ping_out:
            self._fail("no pong from the worker in time")
        else:
            self.ping_out = True
            self._write(client_frame(OP_PING, b"ka"))

    def close(self, code: int) -> None:
        """Close frame now, the socket when the worker answers (or in 3 s)."""
        if self.lost:
            return
        if not self.close_sent:
            self.close_sent = True
            self._write(client_frame(OP_CLOSE, close_payload(code)))
        self.relay = None  # whatever the worker says now no longer concerns the call
        self.twilio = _DISCARD
        self.loop.call_later(3.0, self._abort)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def _abort(self) -> None:
        if not self.transport.is_closing():
            self.transport.abort()
