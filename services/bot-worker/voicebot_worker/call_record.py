"""What the bot-worker stores about a call: its attachment, the caller's turns, context checkpoints
(another worker resumes from them), the stereo recording (segments in the object store, as the call
goes) and, at the call's end, the transcript."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from pipecat.processors.aggregators.llm_context import LLMContext
from redis.exceptions import RedisError

from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallStore
from voicebot_core.registry import WorkerRegistry
from voicebot_worker.call_setup import CallSetup
from voicebot_worker.marks import BotUtterance
from voicebot_worker.recording_upload import RecordingUploader
from voicebot_worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class CallRecordWriter:
    def __init__(self, setup: CallSetup, settings: WorkerSettings, store: CallStore, registry: WorkerRegistry,
                 media: CallMedia) -> None:
        self._setup = setup
        self._call_sid = setup.call_sid
        self._worker_id = settings.worker_id
        self._store = store
        self._registry = registry
        self._media = media
        self._end_retry_s = settings.worker_call_end_retry_s
        self.recording = RecordingUploader(media, setup.call_sid, settings.worker_id)
        self._user_entries: list[dict[str, Any]] = []
        self._earlier_entries: list[dict[str, Any]] = []  # a resumed call: what the earlier workers saved
        self._user_turn_started_at: float | None = None

    async def attached(self) -> None:
        if self._setup.resumed_messages:
            self._earlier_entries = await self._store.transcript(self._call_sid) or []
        await self._store.upsert(self._call_sid, worker_id=self._worker_id, agent_profile=self._setup.profile.name,
                                 stream_sid=self._setup.start.stream_sid, attached_at=time.time())
        await self._store.add_event(self._call_sid, "worker_attached", worker_id=self._worker_id,
                                    resumed=bool(self._setup.resumed_messages))

    async def dtmf(self, digit: str) -> None:
        await self._store.add_event(self._call_sid, "dtmf", digit=digit)

    def user_turn_started(self) -> None:
        self._user_turn_started_at = time.time()

    def user_said(self, text: str) -> None:
        self._user_entries.append({"role": "user", "text": text,
                                   "at": round(self._user_turn_started_at or time.time(), 3)})

    def transcript(self, utterances: list[BotUtterance]) -> list[dict[str, Any]]:
        mine = sorted(self._user_entries + [u.record() for u in utterances if u.text], key=lambda entry: entry["at"])
        return self._earlier_entries + mine

    async def checkpoint(self, context: LLMContext | None, utterances: list[BotUtterance]) -> None:
        """After each bot turn: the context (another worker resumes from it) and the transcript so far, in
        Redis (a worker taking the call over keeps it) and in the object store (the transcript route)."""
        if context is None or not await self._still_attached():
            return
        transcript = self.transcript(utterances)
        try:
            await self._store.checkpoint_context(self._call_sid, _jsonable(context.get_messages()))
            if transcript:
                await self._store.save_transcript(self._call_sid, transcript)
        except Exception:
            log.exception("context checkpoint failed", extra={"call_sid": self._call_sid})
        if transcript:
            await self._put_transcript(transcript)

    async def ended(self, outcome: str, reason: str, utterances: list[BotUtterance],
                    context: LLMContext | None) -> None:
        """Transcript, last context, outcome and recording; then the worker's slot is free."""
        transcript = self.transcript(utterances)
        await self.recording.close()
        if not await self._still_attached():
            # The call moved to another worker while this one was unreachable (stopped, cut off): its
            # record is that worker's now. Only this worker's slot is ours to free.
            await self._registry.release(self._worker_id, self._call_sid)
            return
        ended_at = time.time()  # the call's end, however long Redis keeps us from storing it
        messages = _jsonable(context.get_messages()) if context is not None else None
        deadline = time.monotonic() + self._end_retry_s
        delay = 0.25
        while True:
            try:
                await self._store_end(outcome, reason, ended_at, transcript, messages)
                break
            except RedisError as exc:  # down or restarting: the caller's turns and the slot are worth a wait
                if time.monotonic() + delay > deadline:
                    log.error("could not store the call's end: Redis unavailable: %r", exc,
                              extra={"call_sid": self._call_sid})
                    break
                log.warning("could not store the call's end yet (%r): again in %.2f s", exc, delay,
                            extra={"call_sid": self._call_sid})
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
            except Exception:
                log.exception("could not store the call's end", extra={"call_sid": self._call_sid})
                break
        await self._put_transcript(transcript)

    async def _store_end(self, outcome: str, reason: str, ended_at: float, transcript: list[dict[str, Any]],
                         messages: list[dict[str, Any]] | None) -> None:
        """Every write may be repeated (a retry after a timeout): only the event could then be there twice."""
        await self._store.save_transcript(self._call_sid, transcript)
        if messages is not None:
            await self._store.checkpoint_context(self._call_sid, messages)
        recording = self._media.store.describe(self._media.recording_folder(self._call_sid)) \
            if self.recording.stored else ""
        await self._store.upsert(self._call_sid, outcome=outcome, end_reason=reason, ended_at=ended_at,
                                 **({"recording": recording} if recording else {}))
        await self._store.add_event(self._call_sid, "worker_call_ended", outcome=outcome, reason=reason)
        await self._registry.release(self._worker_id, self._call_sid)

    async def _still_attached(self) -> bool:
        try:
            owner = await self._store.worker_of(self._call_sid)
        except Exception:
            return True  # Redis trouble: write as before rather than lose the call's end
        if owner not in (None, self._worker_id):
            log.warning("call now on worker %s: leaving its record alone", owner, extra={"call_sid": self._call_sid})
            return False
        return True

    async def _put_transcript(self, transcript: list[dict[str, Any]]) -> None:
        try:
            await asyncio.to_thread(self._media.put_transcript, self._call_sid, transcript)
        except Exception:
            log.exception("could not store the transcript in the object store", extra={"call_sid": self._call_sid})


def _jsonable(messages: list[Any]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(messages, default=str))
