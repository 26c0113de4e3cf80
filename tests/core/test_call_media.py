"""A call's recording (segments joined in order, across workers) and transcript in the object store,
and the retention purge by call."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from voicebot_core.call_media import CallMedia, UnreadableRecording, decode_wav, encode_wav
from voicebot_core.object_store import FilesystemObjectStore

SID = "CA" + "ab" * 16


def _stereo(value: int, frames: int) -> bytes:
    return np.full((frames, 2), value, dtype=np.int16).tobytes()


@pytest.fixture
def media(tmp_path) -> CallMedia:
    return CallMedia(FilesystemObjectStore(tmp_path))


def test_segments_join_in_the_order_they_were_cut_across_workers(media: CallMedia) -> None:
    media.put_recording_segment(SID, "worker-b", 0, _stereo(3, 80), 8000, 2, cut_at=1_700_000_010.0)
    media.put_recording_segment(SID, "worker-a", 1, _stereo(2, 80), 8000, 2, cut_at=1_700_000_005.0)
    media.put_recording_segment(SID, "worker-a", 0, _stereo(1, 80), 8000, 2, cut_at=1_700_000_000.0)
    wav = media.recording_wav(SID)
    audio = decode_wav(wav)
    assert (audio.sample_rate, audio.num_channels) == (8000, 2)
    samples = np.frombuffer(audio.pcm, dtype=np.int16).reshape(-1, 2)
    assert list(samples[::80, 0]) == [1, 2, 3]


def test_no_segment_no_recording_and_a_worker_id_cannot_shape_the_key(media: CallMedia) -> None:
    assert media.recording_wav(SID) is None
    key = media.put_recording_segment(SID, "pod/../x:1", 0, _stereo(1, 8), 8000, 2)
    assert key.startswith(f"calls/{SID}/recording/") and "/../" not in key


def test_segments_of_different_formats_are_refused(media: CallMedia) -> None:
    media.put_recording_segment(SID, "w", 0, _stereo(1, 80), 8000, 2, cut_at=1.0)
    media.put_recording_segment(SID, "w", 1, _stereo(1, 80), 16000, 2, cut_at=2.0)
    with pytest.raises(UnreadableRecording, match="16000 Hz"):
        media.recording_wav(SID)
    media.store.put(f"calls/{SID}/recording/9999999999999-w-000002.wav", b"not a wav", "audio/wav")
    with pytest.raises(UnreadableRecording):
        decode_wav(b"not a wav")


def test_transcript_round_trip(media: CallMedia) -> None:
    assert media.transcript(SID) is None
    entries = [{"role": "assistant", "text": "Hello", "at": 1.0}, {"role": "user", "text": "Hi", "at": 2.0}]
    media.put_transcript(SID, entries)
    assert media.transcript(SID) == entries


def test_purge_deletes_whole_calls_older_than_the_retention(media: CallMedia, tmp_path) -> None:
    old, live = "CA" + "01" * 16, "CA" + "02" * 16
    now = time.time()
    for sid in (old, live):
        media.put_recording_segment(sid, "w", 0, _stereo(1, 8), 8000, 2)
        media.put_transcript(sid, [])
    for obj in media.store.list("calls/"):  # every object of `old` is 40 days old; `live` has an old segment
        if obj.key.startswith(f"calls/{old}/") or obj.key.endswith(".wav"):
            path = tmp_path / obj.key
            os.utime(path, (now - 40 * 86400, now - 40 * 86400))
    assert media.purge(30 * 86400, now=now) == (1, 2)
    assert media.recording_wav(old) is None and media.transcript(old) is None
    assert media.recording_wav(live) is not None, "a call with a recent object keeps its whole recording"
    assert encode_wav(b"", 8000, 2)[:4] == b"RIFF"
