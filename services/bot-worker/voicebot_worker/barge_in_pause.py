"""The bot falls silent the moment the caller starts talking over it, and goes on if it was only a backchannel.

A barge-in should stop the bot within a quarter second of the caller's first syllable, but whether
caller speech is a barge-in or a backchannel ("uh-huh", a cough, line noise) is known only once it
has lasted MIN_BARGE_IN_SPEECH_S (turn_start.py). So the output pauses at VAD start: it sends a
`clear` (pipecat's output writes in real time, a chunk or so ahead of playback, and Twilio plays what
it holds) and writes nothing more. Then either
- the speech becomes a turn: pipecat's interruption drops the rest of the reply as before, or
- it stops short: after RESUME_GRACE_S without voice (the "wait," of "wait, one more question"
  is not the end), the audio the `clear` took from the phone's buffer is sent again, marks
  included, and the reply goes on where the caller stopped hearing it.

`PlayoutLog` keeps what was sent and has not played yet; pure bookkeeping, unit-tested alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from pipecat.frames.frames import Frame, OutputAudioRawFrame, OutputTransportMessageFrame

from voicebot_core import metrics

RESUME_GRACE_S = 0.5  # silence after a short burst before the bot goes on: "wait, ..." pauses that long
MAX_PAUSE_S = 2.0  # a pause no verdict ended (the turn strategies were not asked): the bot goes on


def mark_name(frame: Frame) -> str | None:
    if isinstance(frame, OutputTransportMessageFrame) and frame.message.get("event") == "mark":
        return str(frame.message.get("mark", {}).get("name", ""))
    return None


@dataclass
class Sent:
    frame: Frame
    plays_until: float  # monotonic time the phone has played this (for a mark: the audio before it)


class PlayoutLog:
    """The audio and marks sent to the phone that it may not have played yet. Twilio plays what it
    receives in real time: each chunk extends the end of playout by its duration."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sent: deque[Sent] = deque()
        self.play_end = 0.0

    def sent(self, frame: Frame) -> None:
        now = self._clock()
        if isinstance(frame, OutputAudioRawFrame) and frame.sample_rate:
            duration_s = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
            self.play_end = max(self.play_end, now) + duration_s
        elif mark_name(frame) is None:
            return
        self._sent.append(Sent(frame, self.play_end))
        while self._sent and self._sent[0].plays_until <= now:  # played: no longer needed
            self._sent.popleft()

    def audible(self) -> bool:
        return self.play_end > self._clock()

    def ahead_of(self, lead_s: float) -> float:
        """How long to wait before the next write so that the phone holds `lead_s` of audio, not more."""
        return max(0.0, self.play_end - self._clock() - lead_s)

    def take_unplayed(self) -> list[Frame]:
        """What a `clear` sent now drops from the phone's buffer, in order (the chunk playing now
        included, whole); the log then starts empty, as the phone's buffer does."""
        now = self._clock()
        unplayed = [s.frame for s in self._sent if s.plays_until > now]
        self.clear()
        return unplayed

    def clear(self) -> None:
        self._sent.clear()
        self.play_end = self._clock()


class OutputPause:
    """One call's output, paused while caller speech over the bot is undecided.

    `pause()` on VAD start; `resume_soon()` when the speech ended as a backchannel; `interrupted()`
    when pipecat interrupted the reply. The output transport awaits `wait()` before each write."""

    def __init__(self, log: PlayoutLog, send_clear: Callable[[], Awaitable[None]],
                 resend: Callable[[Frame], Awaitable[bool]], on_paused: Callable[[list[str]], None],
                 grace_s: float = RESUME_GRACE_S, max_s: float = MAX_PAUSE_S) -> None:
        """`resend`: writes a frame to the phone again; `on_paused`: the marks whose audio the `clear`
        took back (their echoes to it say nothing about what the caller heard)."""
        self._log = log
        self._send_clear = send_clear
        self._resend = resend
        self._on_paused = on_paused
        self._grace_s = grace_s
        self._max_s = max_s
        self.paused = False  # the bot should be silent now
        self.pauses = 0
        self._writable = asyncio.Event()  # the output may write (a resume has re-sent what was taken back)
        self._writable.set()
        self._unplayed: deque[Frame] = deque()  # taken back from the phone, to send again on resume
        self._generation = 0  # one per pause: a resume of an older pause stops re-sending
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # the clear, then the re-sending, in order

    def pause(self) -> bool:
        """The caller started speaking. Returns whether this paused the bot (it was audible)."""
        if self.paused:
            self._arm(self._max_s)  # voice again before the grace ran out: still undecided
            return False
        if not (self._log.audible() or not self._writable.is_set()):
            return False
        self.paused, self._generation = True, self._generation + 1
        self.pauses += 1
        self._writable.clear()
        taken = self._log.take_unplayed()
        self._unplayed = deque([*taken, *self._unplayed])  # a resume still re-sending: its rest comes after
        self._on_paused([name for name in map(mark_name, taken) if name is not None])
        self._chain(self._send_clear())
        self._arm(self._max_s)
        return True

    def resume_soon(self) -> None:
        """The speech stopped short of a turn: the bot goes on once the line stays quiet for the grace."""
        if self.paused:
            self._arm(self._grace_s)

    def interrupted(self) -> None:
        """pipecat interrupted the reply: nothing of it is sent again; new replies may write."""
        self._cancel_timer()
        if self.paused:
            metrics.BARGE_IN_PAUSES.labels(outcome="interrupted").inc()
        self.paused, self._generation = False, self._generation + 1
        self._unplayed.clear()
        self._writable.set()

    async def wait(self) -> None:
        if not self._writable.is_set():
            await self._writable.wait()

    def close(self) -> None:
        self._cancel_timer()
        if self._task is not None:
            self._task.cancel()

    def _arm(self, delay_s: float) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._resume)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _resume(self) -> None:
        self._timer = None
        self.paused = False
        metrics.BARGE_IN_PAUSES.labels(outcome="resumed").inc()
        self._chain(self._send_unplayed(self._generation))

    async def _send_unplayed(self, generation: int) -> None:
        while self._unplayed and generation == self._generation:
            await self._resend(self._unplayed.popleft())
        if generation == self._generation:
            self._writable.set()

    def _chain(self, step: Awaitable[None]) -> None:
        previous = self._task

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # in order; its failure was logged there
            try:
                await step
            except Exception as exc:  # the socket closed under us: the call is ending anyway
                logger.warning(f"barge-in pause: {exc.__class__.__name__} ({exc})")

        self._task = asyncio.get_running_loop().create_task(run())
