"""What the caller actually heard: Twilio marks, their echoes, and `clear`.

Every chunk of bot speech (a sentence from the TTS) is followed on the socket by a Twilio
`mark`. Twilio echoes a mark when the audio before it has played, or at once when a `clear`
dropped that audio. So a chunk whose mark came back before we sent `clear` was heard; one
still pending when we sent `clear` was not. Pure bookkeeping, no I/O, so it is unit-tested alone.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

ChunkState = Literal["pending", "played", "dropped"]
# A mark whose audio should have finished this long ago but never came back: its echo is not
# being relayed, so at a `clear` trust the playback clock for it instead.
UNECHOED_GRACE_S = 0.5


@dataclass
class SpeechIntent:
    """Text the bot means to say (an LLM reply, growing as tokens arrive, or a fixed prompt)."""

    text: str = ""
    complete: bool = False


@dataclass
class Chunk:
    mark: str
    text: str
    audio_s: float = 0.0
    state: ChunkState = "pending"
    expected_end: float | None = None  # monotonic time its audio should finish playing at the caller


@dataclass
class BotUtterance:
    key: str
    intent: SpeechIntent | None
    at: float
    chunks: list[Chunk] = field(default_factory=list)
    started: float = 0.0  # monotonic time of its first chunk (see MarkTracker.answered)
    latency_ms: int | None = None  # caller's speech end -> first bot audio, when it answers a turn
    closed: bool = False  # the TTS will add no more chunks
    cut: bool = False  # a `clear` was sent while this utterance was still playing or being spoken
    notified: bool = False

    @property
    def text(self) -> str:
        if self.intent and self.intent.text.strip():
            return self.intent.text.strip()
        return " ".join(c.text.strip() for c in self.chunks if c.text.strip())

    @property
    def heard(self) -> str:
        return " ".join(c.text.strip() for c in self.chunks if c.state == "played" and c.text.strip())

    @property
    def interrupted(self) -> bool:
        return self.cut and (any(c.state == "dropped" for c in self.chunks) or self.heard != self.text)

    @property
    def resolved(self) -> bool:
        """Closed and every mark accounted for: nothing of it is still playing."""
        return self.closed and all(c.state != "pending" for c in self.chunks)

    def record(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"role": "assistant", "text": self.text, "heard": self.heard,
                                 "interrupted": self.interrupted, "at": round(self.at, 3)}
        if self.latency_ms is not None:
            entry["latency_ms"] = self.latency_ms
        return entry


class PlaybackClock:
    """Estimates when the audio we sent finishes playing at the caller: Twilio plays what it
    receives in real time, so each media chunk extends the end by its duration."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.play_end = 0.0

    def on_media(self, duration_s: float) -> None:
        self.play_end = max(self.play_end, self._now()) + duration_s

    def on_clear(self) -> None:
        self.play_end = self._now()

    def remaining_s(self) -> float:
        return max(0.0, self.play_end - self._now())


class MarkTracker:
    """Bot utterances, their chunk marks, echoes and clears."""

    def __init__(self, wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall_clock
        self._clock = clock
        self._intents: deque[SpeechIntent] = deque()
        self._utterances: list[BotUtterance] = []
        self._by_key: dict[str, BotUtterance] = {}
        self._by_mark: dict[str, tuple[BotUtterance, Chunk]] = {}
        self._dropped_marks: set[str] = set()  # pending when `clear` went out
        self._held: set[str] = set()  # taken back from the phone by a barge-in pause, not sent again yet
        self._counter = itertools.count(1)
        self._current: BotUtterance | None = None
        self._unclaimed_latency_ms: int | None = None  # an answer's latency before its utterance: `answered`
        self.on_resolved: list[Callable[[BotUtterance], None]] = []

    # intents (from the LLM reply / TTSSpeakFrame, upstream of the TTS)
    def add_intent(self, text: str = "", complete: bool = False) -> SpeechIntent:
        intent = SpeechIntent(text=text, complete=complete)
        self._intents.append(intent)
        return intent

    def discard_intent(self, intent: SpeechIntent) -> None:
        """An intent that will never be spoken (e.g. an LLM reply that was only a tool call)."""
        if intent in self._intents:
            self._intents.remove(intent)

    def drop_unclaimed_intents(self) -> None:
        self._intents.clear()

    # chunks (downstream of the TTS)
    def chunk_spoken(self, key: str, text: str, audio_s: float = 0.0) -> str:
        """A chunk's audio has been queued for the caller; returns the mark name to send after it."""
        utterance = self._by_key.get(key)
        if utterance is None or utterance.closed:
            if self._current is not None and not self._current.closed:
                self._close(self._current)
            intent = self._intents.popleft() if self._intents else None
            utterance = BotUtterance(key=key, intent=intent, at=self._wall(), started=self._clock())
            utterance.latency_ms, self._unclaimed_latency_ms = self._unclaimed_latency_ms, None
            self._utterances.append(utterance)
            self._by_key[key] = utterance
            self._current = utterance
        name = f"u{len(self._utterances)}-c{next(self._counter)}"
        chunk = Chunk(mark=name, text=text, audio_s=audio_s)
        utterance.chunks.append(chunk)
        self._by_mark[name] = (utterance, chunk)
        return name

    def answered(self, speech_end: float, latency_s: float) -> None:
        """The first bot audio after the caller's speech ended (monotonic `speech_end`) went out
        `latency_s` later. The answer is the first utterance started since `speech_end`; the TTS
        often reports a chunk only after its audio, so that utterance may not exist yet."""
        latency_ms = round(latency_s * 1000)
        answer = next((u for u in self._utterances if u.started >= speech_end and u.latency_ms is None), None)
        if answer is not None:
            answer.latency_ms = latency_ms
        else:
            self._unclaimed_latency_ms = latency_ms

    def mark_sent(self, name: str, expected_end: float) -> None:
        """The mark left for the caller; the audio before it should finish at `expected_end`."""
        self._held.discard(name)
        found = self._by_mark.get(name)
        if found is not None:
            found[1].expected_end = expected_end

    def utterance_finished(self, key: str | None = None) -> None:
        utterance = self._by_key.get(key) if key else self._current
        if utterance is not None:
            self._close(utterance)

    def hold(self, names: list[str]) -> None:
        """A barge-in pause (barge_in_pause.py) took these marks' audio back from the phone, to send it
        again if the caller's speech was a backchannel. Twilio echoes them for the pause's `clear`: until
        they are sent again, an echo says nothing, and a `clear` counts them unheard."""
        for name in names:
            found = self._by_mark.get(name)
            if found is not None and found[1].state == "pending":
                found[1].expected_end = None
                self._held.add(name)

    def clear_sent(self) -> bool:
        """We sent `clear`. Returns whether it cut audible bot speech (a barge-in)."""
        cut_any = False
        self._unclaimed_latency_ms = None  # its audio was cut before the TTS reported a chunk of it
        long_played = self._clock() - UNECHOED_GRACE_S
        for utterance in self._utterances:
            for chunk in utterance.chunks:
                if chunk.state == "pending" and chunk.expected_end is not None and chunk.expected_end <= long_played:
                    chunk.state = "played"
            pending = [c for c in utterance.chunks if c.state == "pending"]
            if pending or not utterance.closed:
                if pending:
                    cut_any = True
                utterance.cut = True
                self._dropped_marks.update(c.mark for c in pending)
                for chunk in pending:
                    if chunk.expected_end is None:  # its mark never went out (interruption.py): no echo will come
                        chunk.state = "dropped"
                self._close(utterance)
                # An utterance the TTS had finished was closed already, and no echo may come for what
                # was dropped: it is resolved now or never (its heard text would not reach the context).
                self._notify_if_resolved(utterance)
        self._held.clear()
        return cut_any

    def mark_echoed(self, name: str) -> BotUtterance | None:
        found = self._by_mark.get(name)
        if found is None or name in self._held:
            return None
        utterance, chunk = found
        if chunk.state == "pending":
            chunk.state = "dropped" if name in self._dropped_marks else "played"
        self._notify_if_resolved(utterance)
        return utterance

    # reading
    @property
    def utterances(self) -> list[BotUtterance]:
        return list(self._utterances)

    @property
    def pending_marks(self) -> int:
        return sum(1 for u in self._utterances for c in u.chunks if c.state == "pending")

    def finalize(self) -> list[BotUtterance]:
        """Call end: marks that never came back were not cut by a clear, so count them played."""
        for utterance in self._utterances:
            for chunk in utterance.chunks:
                if chunk.state == "pending":
                    chunk.state = "dropped" if chunk.mark in self._dropped_marks else "played"
            utterance.closed = True
        return self.utterances

    def _close(self, utterance: BotUtterance) -> None:
        if utterance.closed:
            return
        utterance.closed = True
        if self._current is utterance:
            self._current = None
        self._notify_if_resolved(utterance)

    def _notify_if_resolved(self, utterance: BotUtterance) -> None:
        if utterance.resolved and not utterance.notified:
            utterance.notified = True
            for callback in list(self.on_resolved):
                callback(utterance)
