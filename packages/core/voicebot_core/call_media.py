"""A call's recording and transcript in the object store.

Layout (keys below the store's root):

- `calls/<call SID>/recording/<unix ms>-<worker id>-<seq>.wav`: the stereo recording (caller left, bot
  right) in segments, each a whole WAV file, stored as the call goes. Keys sort in the order the
  segments were cut, across the workers a call failed over between; a worker that dies loses only the
  segment it had not stored yet.
- `calls/<call SID>/transcript.json`: the transcript, stored when the call ends.

The bot-worker writes (`put_recording_segment`, `put_transcript`); the dialer API reads (`recording_wav`,
`transcript`); the retention job deletes (`purge`).
"""

from __future__ import annotations

import io
import json
import re
import time
import wave
from dataclasses import dataclass
from typing import Any

from voicebot_core.object_store import ObjectStore, StoredObject, check_key

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
CALLS_FOLDER = "calls/"
UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class UnreadableRecording(ValueError):
    """Segments that cannot be joined (not WAV, or different sample rates or channel counts)."""


@dataclass(frozen=True)
class SegmentAudio:
    pcm: bytes
    sample_rate: int
    num_channels: int


def encode_wav(pcm: bytes, sample_rate: int, num_channels: int) -> bytes:
    """16-bit PCM as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(num_channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    return out.getvalue()


def decode_wav(data: bytes) -> SegmentAudio:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise UnreadableRecording("not 16-bit PCM")
            return SegmentAudio(wav.readframes(wav.getnframes()), wav.getframerate(), wav.getnchannels())
    except (wave.Error, EOFError) as exc:
        raise UnreadableRecording(str(exc)) from None


class CallMedia:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def _folder(call_sid: str) -> str:
        return check_key(f"{CALLS_FOLDER}{call_sid}/", folder=True)

    def recording_folder(self, call_sid: str) -> str:
        return f"{self._folder(call_sid)}recording/"

    def put_recording_segment(self, call_sid: str, worker_id: str, seq: int, pcm: bytes, sample_rate: int,
                              num_channels: int, cut_at: float | None = None) -> str:
        """Store one segment; returns its key."""
        cut_ms = int((time.time() if cut_at is None else cut_at) * 1000)
        worker = UNSAFE_KEY_CHARS.sub("_", worker_id) or "worker"
        key = f"{self.recording_folder(call_sid)}{cut_ms:013d}-{worker}-{seq:06d}.wav"
        self.store.put(key, encode_wav(pcm, sample_rate, num_channels), "audio/wav")
        return key

    def recording_segments(self, call_sid: str) -> list[str]:
        return [o.key for o in self.store.list(self.recording_folder(call_sid)) if o.key.endswith(".wav")]

    def recording_wav(self, call_sid: str) -> bytes | None:
        """The segments joined into one WAV file; None when none was stored."""
        pcm = bytearray()
        fmt: tuple[int, int] | None = None
        for key in self.recording_segments(call_sid):
            data = self.store.get(key)
            if data is None:  # deleted (retention) between list and get
                continue
            segment = decode_wav(data)
            if fmt is None:
                fmt = (segment.sample_rate, segment.num_channels)
            elif fmt != (segment.sample_rate, segment.num_channels):
                raise UnreadableRecording(f"segment {key} is {segment.sample_rate} Hz x {segment.num_channels}, "
                                          f"the first was {fmt[0]} Hz x {fmt[1]}")
            pcm += segment.pcm
        return None if fmt is None else encode_wav(bytes(pcm), *fmt)

    def put_transcript(self, call_sid: str, entries: list[dict[str, Any]]) -> None:
        self.store.put(f"{self._folder(call_sid)}transcript.json", json.dumps(entries).encode(), "application/json")

    def transcript(self, call_sid: str) -> list[dict[str, Any]] | None:
        data = self.store.get(f"{self._folder(call_sid)}transcript.json")
        return None if data is None else json.loads(data)

    def purge(self, older_than_s: float, now: float | None = None) -> tuple[int, int]:
        """Delete the stored objects of every call whose newest object is older than `older_than_s`
        (a call goes whole, never half a recording); returns (calls, objects) deleted."""
        cutoff = (time.time() if now is None else now) - older_than_s
        by_call: dict[str, list[StoredObject]] = {}
        for obj in self.store.list(CALLS_FOLDER):
            by_call.setdefault(obj.key.split("/")[1], []).append(obj)
        old = [objs for objs in by_call.values() if max(o.modified_at for o in objs) < cutoff]
        self.store.delete(o.key for objs in old for o in objs)
        return len(old), sum(len(objs) for objs in old)
