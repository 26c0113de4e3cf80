"""A person on the phone in real time (the softphone): their audio, keys and hang-up, live.

One LiveCaller lasts the whole call and joins each stream the call opens (`attach` is the call's
CallerFactory). Their audio goes onto the stream's 20 ms clock as it arrives, in 160-byte frames,
with a bounded backlog; what the phone plays, and every `clear`, goes to `listener` from the
clock's play tick, so cleared audio never reaches them.
"""

from __future__ import annotations

import asyncio

from voicebot_emulator.bot_playout import FRAME_BYTES, PlayoutTap
from voicebot_emulator.phone import CALLER_HANGUP, CallerRun, MediaSession

MAX_BACKLOG_FRAMES = 25  # 0.5 s: beyond it the oldest caller audio is dropped, so latency cannot grow
PHONE_KEYS = "0123456789*#"


def check_key(digit: object) -> str:
    """`digit` if it is one phone key; ValueError otherwise."""
    if not isinstance(digit, str) or len(digit) != 1 or digit not in PHONE_KEYS:
        raise ValueError(f"{digit!r} is not a phone key (0-9, * or #)")
    return digit


class NoStream(RuntimeError):
    """The call has no media stream open (ringing, or between TwiML verbs)."""


class LiveCaller:
    def __init__(self, listener: PlayoutTap) -> None:
        self.listener = listener
        self.session: MediaSession | None = None  # the open stream, if any
        self.dropped_frames = 0
        self._partial = bytearray()  # audio short of a whole frame, until the rest arrives
        self._hung_up = asyncio.Event()

    # -- the call side (CallerFactory) ----------------------------------------------------------
    def attach(self, session: MediaSession) -> CallerRun:
        session.playout.tap = self.listener
        self.session = session
        return self._run

    async def _run(self) -> str:
        try:
            await self._hung_up.wait()
            self.call_log("caller-hangup", why="softphone")
            return CALLER_HANGUP
        finally:
            self.session = None

    def call_log(self, event: str, **detail: str) -> None:
        if self.session is not None:
            self.session.call.log(event, **detail)

    # -- the person's side ------------------------------------------------------------------------
    def speak(self, mulaw: bytes) -> None:
        """Caller audio in any length; whole 160-byte frames go onto the clock (dropped with no stream)."""
        self._partial += mulaw
        whole = len(self._partial) - len(self._partial) % FRAME_BYTES
        frames, self._partial = bytes(self._partial[:whole]), self._partial[whole:]
        session = self.session
        if session is None:
            return
        for offset in range(0, len(frames), FRAME_BYTES):
            if session.queue_live_frame(frames[offset:offset + FRAME_BYTES], MAX_BACKLOG_FRAMES):
                self.dropped_frames += 1

    async def press(self, digit: str) -> None:
        """One key as a Media Streams `dtmf` event; ValueError for a non-key, NoStream without a stream."""
        check_key(digit)
        if self.session is None:
            raise NoStream("no media stream is open: keys only reach the agent while it streams")
        await self.session.send_dtmf(digit)

    def hang_up(self) -> bool:
        """Hang up; True when an open stream ends with it (as the caller hanging up). False: no
        stream is open, so whoever runs the call must end it."""
        self._hung_up.set()
        return self.session is not None
