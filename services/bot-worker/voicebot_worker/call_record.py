"""What the bot-worker stores about a call: its attachment, the caller's turns, context checkpoints
(another worker resumes from them), the stereo recording file, and the call's end."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.processors.aggregators.llm_context import LLMContext

from voicebot_core.audio import write_wav
from voicebot_core.calls import CallStore
from voicebot_core.registry import WorkerRegistry
from voicebot_worker.call_setup import CallSetup
from voicebot_worker.marks import BotUtterance
from voicebot_worker.settings import WorkerSettings

log = logging.getLogger(__name__)


class CallRecordWriter:
    def __init__(self, setup: CallSetup, settings: WorkerSettings, store: CallStore, registry: WorkerRegistry) -> None:
        self._setup = setup
        self._call_sid = setup.call_sid
        self._worker_id = settings.worker_id
        self._recordings_dir = settings.worker_recordings_dir
        self._store = store
        self._registry = registry
        self._user_entries: list[dict[str, Any]] = []
        self._user_turn_started_at: float | None = None
        self.recording_path: str | None = None

    async def attached(self) -> None:
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

    async def checkpoint(self, context: LLMContext | None) -> None:
        if context is None:
            return
        try:
            await self._store.checkpoint_context(self._call_sid, _jsonable(context.get_messages()))
        except Exception:
            log.exception("context checkpoint failed", extra={"call_sid": self._call_sid})

    def write_recording(self, audio: bytes, sample_rate: int, num_channels: int) -> None:
        if not audio:
            return
        pcm = np.frombuffer(audio, dtype="<i2")
        if num_channels > 1:
            pcm = pcm[: len(pcm) - len(pcm) % num_channels].reshape(-1, num_channels)
        path = Path(self._recordings_dir).resolve() / f"{self._call_sid}.wav"
        self.recording_path = str(write_wav(path, pcm, sample_rate))

    async def ended(self, outcome: str, reason: str, utterances: list[BotUtterance],
                    context: LLMContext | None) -> None:
        """Transcript, last context, outcome and recording; then the worker's slot is free."""
        transcript = sorted(self._user_entries + [u.record() for u in utterances if u.text],
                            key=lambda entry: entry["at"])
        try:
            if self._setup.resumed_messages:  # failover: keep what the earlier worker stored
                transcript = (await self._store.transcript(self._call_sid) or []) + transcript
            await self._store.save_transcript(self._call_sid, transcript)
            if context is not None:
                await self._store.checkpoint_context(self._call_sid, _jsonable(context.get_messages()))
            await self._store.upsert(self._call_sid, outcome=outcome, end_reason=reason,
                                     recording=self.recording_path or "", ended_at=time.time())
            await self._store.add_event(self._call_sid, "worker_call_ended", outcome=outcome, reason=reason)
            await self._registry.release(self._worker_id, self._call_sid)
        except Exception:
            log.exception("could not store the call's end", extra={"call_sid": self._call_sid})


def _jsonable(messages: list[Any]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(messages, default=str))
