"""One socket of the byte-level relay: its frames are read here and passed on to the other socket.

Both sockets of a relayed stream (Twilio's, `media_relay.StreamRelayProtocol`, and the worker's,
`worker_link.WorkerConnection`) read frames with the same loop: frames that may go on as they came
are gathered into runs and written to the peer socket in one write, without a copy when a whole
read goes on; any other frame goes to the socket's `_frame`. Control frames (ping, pong, close),
keepalive and the per-second counter flush work alike on both sides too.
"""

from __future__ import annotations

import asyncio
import types
from abc import ABCMeta, abstractmethod
from typing import Any, Protocol

from prometheus_client import Counter

from voicebot_core.twilio_protocol import is_plain_media
from voicebot_gateway.ws_frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    apply_mask,
    client_frame,
    close_code,
    close_payload,
    server_frame,
)

# how a relay ended
TWILIO_DONE = "twilio"  # stop, close or hang-up: no re-attach
WORKER_DONE = "worker"  # the worker closed normally: the call is over
WORKER_LOST = "lost"  # abnormal close, reset or silence: re-attach
WORKER_REFUSED = "refused"  # the worker closed with 1013 (full, draining): it never took the call, try another
FAILED = "failed"  # a malformed frame from Twilio: the stream's `error` says which

CLOSE_WAIT_S = 3.0  # a close frame unanswered this long: the socket is aborted


class RelayError(Exception):
    """A socket of the relay failed before carrying frames (handshake, hang-up before `start`)."""


HOT_PATH = ("_read_frames", "_flush")


class Peer(Protocol):
    """The transport frames are written to: the other socket's, or one that drops them."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class FrameRelay(asyncio.Protocol, metaclass=ABCMeta):
    """What both sockets of a relayed stream do alike; subclasses say how frames arrive and answer the hooks."""

    MASKED: bool  # frames arrive masked: we are this socket's server (and send unmasked frames)
    MEDIA_ONLY: bool  # only Twilio's plain media frames go on unparsed; False: every data frame
    MAX_FRAME: int
    BAD_HEADER: str  # why a frame with the wrong mask bit or extension bits ends the socket
    counter: Counter  # frames relayed from this socket to the peer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # CPython specializes attribute access in a code object for one class: run by both sockets'
        # classes in turn, the shared loop would keep losing it (a fifth more CPU per frame pair in a
        # micro-benchmark). Each socket class gets its own copy of the hot path's code.
        for name in HOT_PATH:
            shared = FrameRelay.__dict__[name]
            setattr(cls, name, types.FunctionType(shared.__code__.replace(), shared.__globals__, name))

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # instance attributes, read once a read: the loop's constants and whether frames may go on
        # unparsed now (read again after each `_frame`)
        self.reading = (4 if self.MASKED else 0, 0x80 if self.MASKED else 0, self.MAX_FRAME, self.MEDIA_ONLY)
        self.passing = False
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.peer: Peer | None = None
        self.buf = b""  # an incomplete frame from the last read
        self.unread = 0  # bytes still to come of a frame refused unread: skipped, not read as frames
        self.relayed = 0  # frames relayed since the last flush
        self.rx = False  # the socket sent something since the last keepalive check
        self.ping_out = False
        self.close_sent = False
        self.closed = False  # connection_lost

    # --- reading -------------------------------------------------------------------------------
    def _read_frames(self, data: bytes) -> None:
        """The hot path: a loop over the frames of one read, no allocation but the checks' own."""
        self.rx = True
        if self.unread:
            data = self._skip_unread(data)
        if self.buf:
            data = self.buf + data
            self.buf = b""
        mask, mask_bit, limit, check = self.reading
        passing = self.passing
        n = len(data)
        pos = 0
        run = -1  # start of a run of frames that go on in one write
        count = 0  # complete messages in the run
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
            if b1 & 0x80 != mask_bit or b0 & 0x70:
                self._flush(data, run, pos, count)
                self._protocol_error(self.BAD_HEADER)
                return
            if length > limit:
                self._flush(data, run, pos, count)
                self._too_large(length)
                self._read_past(data, head + mask + length)
                return
            end = head + mask + length
            if end > n:
                break
            # goes on unparsed: a data frame, and from Twilio only a whole text frame of plain media
            if passing and b0 & 0x0F < 8 and (
                    not check or (b0 == 0x81 and is_plain_media(apply_mask(data[head + 4:end], data[head:head + 4])))):
                if run < 0:
                    run = pos
                count += b0 >> 7
                pos = end
                continue
            self._flush(data, run, pos, count)
            run = -1
            count = 0
            payload = apply_mask(data[head + 4:end], data[head:head + 4]) if mask else data[head:end]
            if not self._frame(b0, data[pos:end], payload):
                return
            passing = self.passing
            pos = end
        if run >= 0:  # `_flush` inline: this one comes with every read
            try:
                self.peer.write(data if run == 0 and pos == n else data[run:pos])  # type: ignore[union-attr]
            except RuntimeError:
                self._peer_gone(count)
            else:
                self.relayed += count
        if pos < n:
            self.buf = data[pos:]

    def _flush(self, data: bytes, run: int, pos: int, count: int) -> None:
        """Write the run data[run:pos] (`count` messages) to the peer before a frame that does not go on."""
        if run < 0:
            return
        try:
            self.peer.write(data if run == 0 and pos == len(data) else data[run:pos])  # type: ignore[union-attr]
        except RuntimeError:  # uvloop: the peer's socket is already closed (its end is on the way)
            self._peer_gone(count)
            return
        self.relayed += count

    def _read_past(self, data: bytes, end: int) -> None:
        """Go on after a frame refused unread, so the frames after it (a close) are still read as frames."""
        if self.transport.is_closing():
            return
        if end < len(data):
            self._read_frames(data[end:])
        else:
            self.unread = end - len(data)

    def _skip_unread(self, data: bytes) -> bytes:
        """What a read holds after the rest of a refused frame."""
        skipped = min(self.unread, len(data))
        self.unread -= skipped
        return data[skipped:]

    @abstractmethod
    def _frame(self, b0: int, raw: bytes, payload: bytes) -> bool:
        """A frame that does not go on unparsed (payload unmasked). False: stop reading."""

    def _control(self, opcode: int, payload: bytes) -> bool:
        """Ping, pong or close; False after a close."""
        if opcode == OP_CLOSE:
            if not self.close_sent:
                self.close_sent = True
                self._send_control(OP_CLOSE, payload[:2])
            self.transport.close()
            self._peer_closed(close_code(payload))
            return False
        if opcode == OP_PING:
            self._send_control(OP_PONG, payload)
        elif opcode == OP_PONG:
            self.ping_out = False
        return True

    def _peer_closed(self, code: int) -> None:
        """The other end closed this socket with `code`."""

    def _peer_gone(self, count: int) -> None:
        """The peer's socket broke while `count` messages were written to it."""

    @abstractmethod
    def _protocol_error(self, reason: str) -> None:
        """A frame header this end must refuse: close the socket."""

    @abstractmethod
    def _too_large(self, length: int) -> None:
        """A frame over this end's size limit: close the socket."""

    # --- backpressure ----------------------------------------------------------------------------
    def pause_writing(self) -> None:
        """This socket's reader is slower than the peer talks: stop reading the peer."""
        if self.peer is not None and not self.peer.is_closing():
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and not self.peer.is_closing():
            self.peer.resume_reading()

    # --- writing, keepalive, closing ---------------------------------------------------------------
    def _send_control(self, opcode: int, payload: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(server_frame(opcode, payload) if self.MASKED else client_frame(opcode, payload))

    def flush_counter(self) -> None:
        """Counters go to Prometheus once a second, not per frame."""
        if self.relayed:
            self.counter.inc(self.relayed)
            self.relayed = 0

    def keepalive(self) -> None:
        """Ping a silent socket; one still silent at the next check is dead."""
        if self.rx:
            self.rx, self.ping_out = False, False
        elif self.ping_out:
            self._silent()
        else:
            self.ping_out = True
            self._send_control(OP_PING, b"ka")

    def _silent(self) -> None:
        self.transport.abort()

    def _close(self, code: int, reason: str = "") -> None:
        """Close frame now, the socket once the other end answers (or in CLOSE_WAIT_S)."""
        if self.close_sent or self.transport.is_closing():
            return
        self.close_sent = True
        self._send_control(OP_CLOSE, close_payload(code, reason))
        self.loop.call_later(CLOSE_WAIT_S, self._abort)

    def _abort(self) -> None:
        if not self.closed:
            self.transport.abort()
