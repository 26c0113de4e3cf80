"""Prepared phrases: each agent profile's fixed prompts synthesised at worker start, replayed from memory.

A greeting synthesised when the call starts costs the caller the TTS's time to first audio and, on a
fresh worker, the model loads. The texts that never depend on the call (greetings without
`{variables}`, idle prompt and goodbye, goodbye, transfer message) are synthesised once per process
with the profile's own TTS at the pipeline's rate, before the worker registers. A TTS built for a
call (`serve_prepared`) then plays a text it finds here straight from memory, at the run_tts level:
pipecat's audio contexts, TTSStarted/Stopped/Text frames, marks and interruptions are those of live
speech. Websocket TTS services (their audio arrives on a receive loop, not from run_tts) stay live.
"""

from __future__ import annotations

import asyncio
import logging
import string
import time
from collections.abc import AsyncGenerator, Iterable
from functools import cache
from typing import TYPE_CHECKING

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.tts_service import TTSService, WebsocketTTSService

from voicebot_core import metrics
from voicebot_core.profiles import AgentProfile, AgentProfiles

if TYPE_CHECKING:
    from voicebot_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

PhraseKey = tuple[str, str, int, str]  # TTS class, its settings (model, voice, language...), sample rate, text
_PHRASES: dict[PhraseKey, tuple[bytes, ...]] = {}  # per process: every call of the worker shares it


def prepared_count() -> int:
    return len(_PHRASES)


def has_variables(text: str) -> bool:
    try:
        return any(field is not None for _, field, _, _ in string.Formatter().parse(text))
    except ValueError:  # unbalanced braces: profiles.fill() speaks such a text as written
        return False


def static_phrases(profile: AgentProfile) -> list[str]:
    """The profile's texts that are the same on every call (in order, without repeats)."""
    texts = [profile.greeting.inbound, profile.greeting.outbound, profile.idle_prompt, profile.idle_goodbye,
             profile.goodbye, profile.transfer_message]
    return list(dict.fromkeys(t for t in texts if t.strip() and not has_variables(t)))


class PreparedPhrasesTTS(TTSService):
    """Mixed in above a TTS service's class by `serve_prepared`: run_tts replays prepared audio."""

    def phrase_key(self, text: str, sample_rate: int | None = None) -> PhraseKey:
        service = f"{type(self).__module__}.{type(self).__qualname__}"
        return (service, repr(self._settings), sample_rate or self.sample_rate, text)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        chunks = _PHRASES.get(self.phrase_key(text))
        metrics.TTS_PREPARED_PHRASES.labels("miss" if chunks is None else "hit").inc()
        if chunks is None:
            async for frame in super().run_tts(text, context_id):
                yield frame
            return
        # The same chunks live synthesis yielded: the base class queues, paces and interrupts them alike.
        for chunk in chunks:
            yield TTSAudioRawFrame(chunk, self.sample_rate, 1, context_id=context_id)

    async def synthesize(self, text: str, sample_rate: int) -> tuple[bytes, ...]:
        """Live synthesis outside a pipeline (worker start), chunked as run_tts yields it on a call."""
        self._sample_rate = sample_rate  # what the pipeline's StartFrame sets on a call
        self._resampler = create_stream_resampler()  # a fresh stream, like a call's first utterance
        chunks: list[bytes] = []
        async for frame in super().run_tts(text, f"prepare-{len(_PHRASES)}"):
            if isinstance(frame, ErrorFrame):
                raise RuntimeError(frame.error)
            if isinstance(frame, TTSAudioRawFrame) and frame.audio:
                chunks.append(frame.audio)
        if not chunks:
            raise RuntimeError("the TTS returned no audio")
        return tuple(chunks)


@cache
def _prepared_class(cls: type[TTSService]) -> type[PreparedPhrasesTTS]:
    # The provider's own name: logs, traces and checks keep naming the service they built.
    return type(cls.__name__, (PreparedPhrasesTTS, cls), {"__module__": cls.__module__,
                                                          "__qualname__": cls.__qualname__})


def serve_prepared(tts: TTSService) -> TTSService:
    """`tts`, playing prepared phrases from memory; websocket services are returned as they are."""
    if isinstance(tts, (PreparedPhrasesTTS, WebsocketTTSService)):
        return tts
    # Re-classing the built instance keeps each provider's constructor as it is (one place for all of them).
    tts.__class__ = _prepared_class(type(tts))
    return tts


def warm_shared_models(profiles: Iterable[AgentProfile]) -> None:
    """Load the per-process VAD and Smart Turn sessions now, not on the first call (blocking)."""
    from voicebot_worker.turns import shared_smart_turn_session, smart_turn_executor
    from voicebot_worker.vad import shared_silero_session

    shared_silero_session()
    if any(p.turn_detection == "smart_turn_v3" for p in profiles):
        shared_smart_turn_session()
        smart_turn_executor()


async def prepare_worker(profiles: AgentProfiles, settings: WorkerSettings) -> int:
    """Warm every profile's services (model loads) and, if enabled, prepare its phrases.

    Never raises: a profile or phrase that fails is logged and its calls use live synthesis.
    Returns the number of phrases prepared."""
    from voicebot_worker.providers import build_services

    started = time.monotonic()
    loaded = [profiles.get(name) for name in profiles.names]
    try:
        await asyncio.to_thread(warm_shared_models, loaded)
    except Exception:
        log.exception("loading the VAD / Smart Turn models at start failed; the first call loads them")
    prepared = 0
    for profile in loaded:
        try:
            services = await asyncio.to_thread(build_services, profile, settings)  # loads its models
        except Exception as exc:
            log.warning("agent profile %s: services not built at start (%s); calls build them", profile.name, exc)
            continue
        if not settings.worker_prepare_phrases or not isinstance(services.tts, PreparedPhrasesTTS):
            continue
        prepared += await _prepare_phrases(profile, services.tts, services.pipeline_sample_rate)
    log.info("worker warm-up: %d phrases prepared (%d in this process) in %.2fs", prepared, prepared_count(),
             time.monotonic() - started)
    return prepared


async def _prepare_phrases(profile: AgentProfile, tts: PreparedPhrasesTTS, sample_rate: int) -> int:
    prepared = 0
    for text in static_phrases(profile):
        key = tts.phrase_key(text, sample_rate)
        if key in _PHRASES:
            continue  # another profile with the same TTS says it too
        try:
            _PHRASES[key] = await tts.synthesize(text, sample_rate)
            prepared += 1
        except Exception as exc:
            log.warning("agent profile %s: phrase %r not prepared (%s); it is synthesised live",
                        profile.name, text[:40], exc)
    return prepared
