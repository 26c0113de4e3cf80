"""Stores a call's recording segment by segment as the recorder cuts them (every
`VOICEBOT_WORKER_RECORDING_SEGMENT_S`), in order and off the event loop: the pipeline never waits for
the object store, and a worker that dies loses only the segment it had not stored yet."""

from __future__ import annotations

import asyncio
import logging
import time

from voicebot_core import metrics
from voicebot_core.call_media import CallMedia

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.2, 1.0, 3.0)  # a store that blips is tried again; after these the segment is lost


class RecordingUploader:
    def __init__(self, media: CallMedia, call_sid: str, worker_id: str) -> None:
        self._media = media
        self._call_sid = call_sid
        self._worker_id = worker_id
        self._queue: asyncio.Queue[tuple[bytes, int, int, float] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self.stored = 0
        self.failed = 0

    def add(self, audio: bytes, sample_rate: int, num_channels: int) -> None:
        """A segment from the recorder (16-bit PCM, interleaved); stored in the background."""
        if not audio:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"recording-{self._call_sid}")
        self._queue.put_nowait((audio, sample_rate, num_channels, time.time()))

    async def close(self, timeout_s: float = 30.0) -> None:
        """Store what is queued (the last segment comes when the recorder stops), then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.error("recording upload still busy after %.0f s; %d segments not stored", timeout_s,
                      self._queue.qsize(), extra={"call_sid": self._call_sid})
            self._task.cancel()

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self._store(*item)

    async def _store(self, audio: bytes, sample_rate: int, num_channels: int, cut_at: float) -> None:
        seq = self._seq
        self._seq += 1
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            try:
                await asyncio.to_thread(self._media.put_recording_segment, self._call_sid, self._worker_id, seq,
                                        audio, sample_rate, num_channels, cut_at)
            except Exception:
                if delay is None:
                    self.failed += 1
                    metrics.RECORDING_SEGMENTS.labels("failed").inc()
                    log.exception("recording segment %d lost after %d attempts", seq, attempt + 1,
                                  extra={"call_sid": self._call_sid})
                    return
                await asyncio.sleep(delay)
            else:
                self.stored += 1
                metrics.RECORDING_SEGMENTS.labels("stored").inc()
                return
