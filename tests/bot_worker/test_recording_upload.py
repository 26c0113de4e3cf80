"""The recording uploader stores segments in the order the recorder cut them, off the event loop,
tries a failing store again, and counts what it could not store."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicebot_core import metrics
from voicebot_core.call_media import CallMedia, decode_wav
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_worker import recording_upload
from voicebot_worker.recording_upload import RecordingUploader

SID = "CA" + "7a" * 16


class FailingPuts(FilesystemObjectStore):
    """The filesystem store with its first `failures` puts failing (a store that blips)."""

    def __init__(self, root, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("store unavailable")
        super().put(key, data, content_type)


def _segment(value: int) -> bytes:
    return np.full((800, 2), value, dtype=np.int16).tobytes()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch) -> None:
    monkeypatch.setattr(recording_upload, "RETRY_DELAYS_S", (0.01, 0.01, 0.01))


def _stored_values(media: CallMedia) -> list[int]:
    audio = decode_wav(media.recording_wav(SID))
    return list(np.frombuffer(audio.pcm, dtype=np.int16).reshape(-1, 2)[::800, 0])


async def test_segments_are_stored_in_order(tmp_path) -> None:
    media = CallMedia(FilesystemObjectStore(tmp_path))
    uploader = RecordingUploader(media, SID, "w1")
    for value in range(1, 6):
        uploader.add(_segment(value), 8000, 2)
    uploader.add(b"", 8000, 2)  # an empty flush stores nothing
    await uploader.close()
    assert (uploader.stored, uploader.failed) == (5, 0)
    assert _stored_values(media) == [1, 2, 3, 4, 5]


async def test_a_store_that_blips_is_tried_again(tmp_path) -> None:
    media = CallMedia(FailingPuts(tmp_path, failures=2))
    uploader = RecordingUploader(media, SID, "w1")
    uploader.add(_segment(1), 8000, 2)
    uploader.add(_segment(2), 8000, 2)
    await uploader.close()
    assert (uploader.stored, uploader.failed) == (2, 0)
    assert _stored_values(media) == [1, 2]


async def test_a_segment_the_store_refuses_every_time_is_counted_and_the_next_still_stored(tmp_path) -> None:
    failed_before = metrics.RECORDING_SEGMENTS.labels("failed")._value.get()
    media = CallMedia(FailingPuts(tmp_path, failures=len(recording_upload.RETRY_DELAYS_S) + 1))
    uploader = RecordingUploader(media, SID, "w1")
    uploader.add(_segment(1), 8000, 2)
    uploader.add(_segment(2), 8000, 2)
    await asyncio.wait_for(uploader.close(), 5)
    assert (uploader.stored, uploader.failed) == (1, 1)
    assert metrics.RECORDING_SEGMENTS.labels("failed")._value.get() == failed_before + 1
    assert _stored_values(media) == [2]
