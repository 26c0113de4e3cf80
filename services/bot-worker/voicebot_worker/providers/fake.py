"""Deterministic stand-ins for cloud providers that still move real audio.

- FakeSTT: for each caller speech segment (VAD stop) emits the next utterance of the caller
  script (voicebot_simulation.caller_script, the emulator's format), after `stt_delay_s`.
- FakeLLM: reply rules {match, reply} or {match, tool}; default "You said: {text}."; streams the
  reply after `llm_ttfb_s`; tools go through pipecat's function-calling path.
- FakeTTS: formant speech (voicebot_simulation.formant_voice) in 20 ms chunks after `tts_ttfb_s`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    FunctionCallFromLLM,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserMuteStartedFrame,
    UserMuteStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings, STTSettings, TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.tracing.service_decorators import traced_llm, traced_stt, traced_tts

from voicebot_core.profiles import AgentProfile
from voicebot_simulation import caller_script, formant_voice
from voicebot_worker.providers import ProviderServices

if TYPE_CHECKING:
    from voicebot_worker.settings import WorkerSettings

DEFAULT_REPLY = "You said: {text}."


# caller scripts -------------------------------------------------------------------------------
def load_script_utterances(script: str | Mapping[str, Any]) -> list[str]:
    """What the caller script says, in order: a builtin name, a YAML file path, or a parsed mapping.

    The emulator's phone plays the same script, so the transcripts match what the caller said."""
    return caller_script.utterances(script)


# STT -----------------------------------------------------------------------------------------
MUTED_SPEECH_RMS = 300  # int16 RMS: the formant voice is far above, line silence far below
MUTED_PAUSE_S = 0.3


class FakeSTT(SegmentedSTTService):
    def __init__(self, utterances: list[str], *, delay_s: float = 0.05, min_segment_s: float = 0.15,
                 **kwargs: Any) -> None:
        super().__init__(settings=STTSettings(model="fake-script", language="en"), **kwargs)
        self._utterances = list(utterances)
        self._spoken_count = 0  # not `_next`: FrameProcessor uses that name
        self._delay_s = delay_s
        self._min_segment_s = min_segment_s
        self._muted = False
        self._burst_s = 0.0  # speech heard while muted, in the current burst
        self._quiet_s = 0.0

    def skip_utterances(self, count: int) -> None:
        """A resumed call: the caller already said the first `count` utterances to another worker."""
        self._spoken_count = min(len(self._utterances), max(0, count))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        # While the caller is muted (an outbound greeting), VAD yields no segments, so what the
        # caller says then never reaches run_stt: count those utterances here to stay on script.
        if isinstance(frame, UserMuteStartedFrame):
            self._muted, self._burst_s, self._quiet_s = True, 0.0, 0.0
        elif isinstance(frame, UserMuteStoppedFrame):
            self._end_muted_burst()
            self._muted = False
        elif self._muted and isinstance(frame, InputAudioRawFrame) and frame.audio:
            seconds = len(frame.audio) / (2 * frame.sample_rate)
            samples = np.frombuffer(frame.audio, dtype=np.int16).astype(np.float32)
            if float(np.sqrt(np.mean(samples * samples))) > MUTED_SPEECH_RMS:
                self._burst_s, self._quiet_s = self._burst_s + seconds, 0.0
            else:
                self._quiet_s += seconds
                if self._quiet_s >= MUTED_PAUSE_S:
                    self._end_muted_burst()
        await super().process_frame(frame, direction)

    def _end_muted_burst(self) -> None:
        if self._burst_s >= self._min_segment_s and self._spoken_count < len(self._utterances):
            logger.info(f"{self}: caller said {self._utterances[self._spoken_count]!r} while muted")
            self._spoken_count += 1
        self._burst_s = 0.0

    @property
    def wants_wav_segments(self) -> bool:
        return False

    def can_generate_metrics(self) -> bool:
        return True

    @traced_stt
    async def _handle_transcription(self, transcript: str, is_final: bool, language: Any = None) -> None:
        """Marker for pipecat's STT tracing: the decorator wraps push_frame to open an `stt` span per
        transcript (a no-op unless the PipelineWorker runs with enable_tracing)."""

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        speech_s = len(audio) / (2 * self.sample_rate) - self._trailing_silence_secs
        if speech_s < self._min_segment_s:
            return
        await self.start_ttfb_metrics()
        await asyncio.sleep(self._delay_s)
        if self._spoken_count >= len(self._utterances):
            logger.warning(f"{self}: caller spoke more segments than the script has utterances")
            await self.stop_ttfb_metrics()
            return
        text = self._utterances[self._spoken_count]
        self._spoken_count += 1
        await self.stop_ttfb_metrics()
        yield TranscriptionFrame(text, "", time_now_iso8601(), finalized=True)


# LLM -----------------------------------------------------------------------------------------
def _message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def choose_reply(rules: list[dict[str, Any]], user_text: str) -> dict[str, str]:
    """First rule whose `match` occurs in the text (case-insensitive); else the default reply."""
    lowered = user_text.lower()
    for rule in rules:
        match = str(rule.get("match", ""))
        if match.lower() in lowered:
            if rule.get("tool"):
                return {"tool": str(rule["tool"])}
            return {"reply": str(rule.get("reply", "")).replace("{text}", user_text)}
    return {"reply": DEFAULT_REPLY.replace("{text}", user_text.strip().rstrip(".?!"))}


class FakeLLM(LLMService):
    def __init__(self, rules: list[dict[str, Any]] | None = None, *, ttfb_s: float = 0.05,
                 **kwargs: Any) -> None:
        settings = LLMSettings(model="fake-rules", system_instruction=None, temperature=None, max_tokens=None,
                               top_p=None, top_k=None, frequency_penalty=None, presence_penalty=None, seed=None,
                               filter_incomplete_user_turns=None, user_turn_completion_config=None)
        super().__init__(settings=settings, **kwargs)
        self._rules = rules or []
        self._ttfb_s = ttfb_s

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_processing_metrics()
        await self.start_ttfb_metrics()
        try:
            await self._process_context(frame.context)
        finally:
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())

    @traced_llm  # an `llm` span per completion when the PipelineWorker runs with enable_tracing
    async def _process_context(self, context: Any) -> None:
        messages = context.get_messages()
        await asyncio.sleep(self._ttfb_s)
        await self.stop_ttfb_metrics()
        # Answer only a caller's turn: after a tool result there is nothing left to say.
        if not messages or messages[-1].get("role") != "user":
            return
        choice = choose_reply(self._rules, _message_text(messages[-1]))
        if "tool" in choice:
            call = FunctionCallFromLLM(function_name=choice["tool"], tool_call_id=f"call_{uuid.uuid4().hex[:12]}",
                                       arguments={}, context=context)
            await self.run_function_calls([call])
            return
        for index, word in enumerate(choice["reply"].split(" ")):
            await self._push_llm_text(word if index == 0 else f" {word}")


# TTS -----------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def _formant_pcm(text: str, sample_rate: int) -> bytes:
    """Formant synthesis costs ~0.2 s of CPU per second of speech; prompts repeat, so keep them."""
    return formant_voice.synthesize(text, sample_rate).astype("<i2").tobytes()


class FakeTTS(TTSService):
    syntheses: ClassVar[Counter[str]] = Counter()  # texts synthesised by run_tts, per process (for tests)

    def __init__(self, *, ttfb_s: float = 0.05, chunk_ms: int = 20, **kwargs: Any) -> None:
        super().__init__(push_start_frame=True, push_stop_frames=True,
                         settings=TTSSettings(model="formant", voice="formant", language="en"), **kwargs)
        self._ttfb_s = ttfb_s
        self._chunk_ms = chunk_ms

    def can_generate_metrics(self) -> bool:
        return True

    async def prewarm(self, texts: list[str], sample_rate: int) -> None:
        """Synthesize fixed prompts ahead, so an idle prompt starts on time."""
        for text in texts:
            await asyncio.to_thread(_formant_pcm, text, sample_rate)

    @traced_tts  # a `tts` span per utterance when the PipelineWorker runs with enable_tracing
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        await self.start_tts_usage_metrics(text)
        FakeTTS.syntheses[text] += 1
        started = asyncio.get_running_loop().time()
        audio = await asyncio.to_thread(_formant_pcm, text, self.sample_rate)
        await asyncio.sleep(max(0.0, self._ttfb_s - (asyncio.get_running_loop().time() - started)))
        step = self.sample_rate * self._chunk_ms // 1000 * 2
        for offset in range(0, len(audio), step):
            yield TTSAudioRawFrame(audio[offset:offset + step], self.sample_rate, 1, context_id=context_id)


def build_fake_services(profile: AgentProfile, settings: WorkerSettings) -> ProviderServices:
    options = profile.provider_options
    script = options.get("caller_script")
    utterances = load_script_utterances(script) if script else list(options.get("utterances") or [])
    return ProviderServices(
        stt=FakeSTT(utterances, delay_s=float(options.get("stt_delay_s", 0.05))),
        llm=FakeLLM(list(options.get("replies") or []), ttfb_s=float(options.get("llm_ttfb_s", 0.05))),
        tts=FakeTTS(ttfb_s=float(options.get("tts_ttfb_s", 0.05))),
        pipeline_sample_rate=int(options.get("sample_rate", 8000)),
    )
