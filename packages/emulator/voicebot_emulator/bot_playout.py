"""The bot's side of a Media Stream as the phone plays it, 20 ms a tick, into the call's heard track.

Audio and marks queue in arrival order; a mark is echoed once the audio queued before it has
played, and `clear` drops the queued audio and echoes every pending mark at once, as Twilio does.
What played also tells the caller script when the bot last spoke, and makes the report's
heard segments. A tap (the live caller) gets each frame at the tick it plays, and every clear.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

import numpy as np

from voicebot_core import audio
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.model import Call

TICK_S = 0.02  # the phone's clock: one frame each way per tick
FRAME_BYTES = audio.FRAME_SAMPLES
SILENT_PCM = np.zeros(FRAME_BYTES, dtype=np.int16)
AUDIBLE_PEAK = 300  # a played frame louder than this (linear peak) counts as bot audio
SEGMENT_GAP_S = 0.3  # a heard segment ends after this much quiet
SILENT_MULAW = bytes([audio.MULAW_SILENCE]) * FRAME_BYTES


class PlayoutTap(Protocol):
    """Someone listening on the phone's speaker: called from the clock, so it must not block."""

    def played(self, frame: bytes) -> None:
        """One 20 ms mu-law frame of bot audio, at the tick it plays (silent ticks are not passed)."""

    def cleared(self) -> None:
        """The server sent `clear`: the queued audio was dropped and will never play."""


class BotPlayout:
    def __init__(self, call: Call, call_audio: CallAudio, send_mark: Callable[[str], Awaitable[None]]) -> None:
        self.call, self.call_audio = call, call_audio
        self._send_mark = send_mark
        self.tap: PlayoutTap | None = None
        self._queue: deque[bytes | str] = deque()  # audio chunks and mark names, in arrival order
        # bot-audio tracking for wait_for_bot / barge_in (seconds since call start)
        self.last_audible: float | None = None
        self._segment: dict[str, float] | None = None

    @property
    def pending(self) -> bool:
        """Audio or marks the server sent that have not played yet."""
        return bool(self._queue)

    def add_audio(self, chunk: bytes) -> None:
        self._queue.append(chunk)

    def add_mark(self, name: str) -> None:
        self._queue.append(name)

    async def clear(self) -> None:
        t = self.call.now()
        self.call.clears.append(t)
        marks = [item for item in self._queue if isinstance(item, str)]
        dropped = sum(len(item) for item in self._queue if isinstance(item, bytes))
        self._queue.clear()
        self.call.log("clear", dropped_ms=dropped // 8, marks_returned=len(marks))
        if self.tap is not None:
            self.tap.cleared()
        for name in marks:
            await self._echo_mark(name, cleared=True)

    async def _echo_mark(self, name: str, *, cleared: bool = False) -> None:
        self.call.marks.append({"t": self.call.now(), "name": name, "cleared": cleared})
        await self._send_mark(name)

    async def play_tick(self, scheduled_monotonic: float) -> None:
        """Play the next 20 ms (silence when nothing is queued) at its scheduled moment."""
        played = bytearray()
        while self._queue and len(played) < FRAME_BYTES:
            item = self._queue[0]
            if isinstance(item, str):
                self._queue.popleft()
                await self._echo_mark(item)
                continue
            take = FRAME_BYTES - len(played)
            played += item[:take]
            if len(item) > take:
                self._queue[0] = item[take:]
            else:
                self._queue.popleft()
        while self._queue and isinstance(self._queue[0], str):  # audio before it has now played
            await self._echo_mark(self._queue.popleft())
        if not played:  # the common case between bot turns: no numpy work
            self.call_audio.write("heard", SILENT_PCM, scheduled_monotonic)
            self._track(False)
            return
        if self.tap is not None:
            self.tap.played(bytes(played) + SILENT_MULAW[len(played):])
        pcm = audio.mulaw_to_pcm16(bytes(played))
        if len(pcm) < FRAME_BYTES:
            pcm = np.concatenate([pcm, SILENT_PCM[: FRAME_BYTES - len(pcm)]])
        self.call_audio.write("heard", pcm, scheduled_monotonic)
        self._track(int(np.abs(pcm.astype(np.int32)).max()) > AUDIBLE_PEAK)

    def _track(self, audible: bool) -> None:
        now = self.call.now()
        if audible:
            self.last_audible = now
            if self._segment is None:
                self._segment = {"start": now, "end": now + TICK_S}
                self.call.log("bot-audio-start")
            self._segment["end"] = round(now + TICK_S, 3)
        elif self._segment is not None and now - self._segment["end"] >= SEGMENT_GAP_S:
            self.close_segment()

    def close_segment(self) -> None:
        """End the heard segment in progress, if any (the stream is closing)."""
        if self._segment is not None:
            self.call.heard.append({"start": self._segment["start"], "end": self._segment["end"],
                                    "source": "stream"})
            self.call.log("bot-audio-end", duration_s=round(self._segment["end"] - self._segment["start"], 3))
            self._segment = None
