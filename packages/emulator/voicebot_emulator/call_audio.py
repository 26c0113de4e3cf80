"""The two sides of a call's audio, aligned on one 8 kHz timeline: caller (sent) and heard."""

from __future__ import annotations

import time

import numpy as np

from voicebot_core.audio import TELEPHONY_RATE

TRACKS = ("caller", "heard")


class CallAudio:
    """Each track is int16 samples placed at the wall-clock moment they were sent or played.

    Writes land at their time, or right after the previous write of that track if that is later
    (a late tick never overlaps audio already placed); gaps become silence.
    """

    def __init__(self, origin_monotonic: float | None = None) -> None:
        self.origin = time.monotonic() if origin_monotonic is None else origin_monotonic
        self._tracks: dict[str, bytearray] = {track: bytearray() for track in TRACKS}
        self._end = 0

    def _sample_at(self, moment: float | None) -> int:
        moment = time.monotonic() if moment is None else moment
        return max(0, round((moment - self.origin) * TELEPHONY_RATE))

    def write(self, track: str, pcm: np.ndarray, at_monotonic: float | None = None) -> None:
        buffer = self._tracks[track]
        gap = self._sample_at(at_monotonic) - len(buffer) // 2
        if gap > 0:
            buffer.extend(bytes(2 * gap))
        buffer.extend(pcm.astype("<i2", copy=False).tobytes())

    def end(self, at_monotonic: float | None = None) -> None:
        """The call is over: both tracks last until then, even if the end was silent."""
        self._end = max(self._end, self._sample_at(at_monotonic))

    def render(self, track: str) -> np.ndarray:
        length = max(self._end, *(len(b) // 2 for b in self._tracks.values()))
        out = np.zeros(length, dtype=np.int16)
        samples = np.frombuffer(bytes(self._tracks[track]), dtype="<i2")
        out[: len(samples)] = samples
        return out

    def mixed(self) -> np.ndarray:
        total = self.render("caller").astype(np.int32) + self.render("heard").astype(np.int32)
        return np.clip(total, -32768, 32767).astype(np.int16)

    def stereo(self) -> np.ndarray:
        return np.stack([self.render("caller"), self.render("heard")], axis=1)
