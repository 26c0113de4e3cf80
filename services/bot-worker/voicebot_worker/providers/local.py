"""Local providers: whisper tiny.en STT, an OpenAI-compatible local LLM server, hibari or Piper TTS.

Everything loads from the models directory (`make models`, VOICEBOT_MODELS_DIR, default
~/.cache/voicebot/models) and nothing is downloaded at run time. The LLM runs in its own process
(`python -m voicebot_worker.llm_server`), reached at `llm_base_url`.

Whisper expects 16 kHz, so these services ask for a 16 kHz pipeline (the Twilio serializer upsamples
the 8 kHz call audio). Whisper and hibari are loaded once per process and shared by every call;
call `preload()` at worker start so that the first call does not load them on the event loop.

provider_options: tts (hibari|piper, default hibari), llm_model (name sent to the server, default
"local"), temperature (default 0.3), max_tokens (default 150).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame, FunctionCallFromLLM
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.types import assert_given

from voicebot_core.profiles import AgentProfile

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from voicebot_worker.providers import ProviderServices
    from voicebot_worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

PIPELINE_SAMPLE_RATE = 16000  # whisper's native rate
DEFAULT_LLM_BASE_URL = "http://127.0.0.1:8000/v1"
WHISPER_DIR = "whisper-tiny.en"
PIPER_DIR = "piper-joe"
PIPER_VOICE = "en_US-joe-medium"
HIBARI_VOICE = "heart"  # the only hibari voice inside its wheel; the others download on first use
FETCH_HINT = "run `make models` (scripts/fetch_models.py) or point VOICEBOT_MODELS_DIR at the models"


class MissingModelError(FileNotFoundError):
    """A model file the local providers need is not in the models directory."""


def models_dir(settings: Any = None) -> Path:
    configured = getattr(settings, "models_dir", None) or os.environ.get("VOICEBOT_MODELS_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "voicebot" / "models"


def llm_base_url(settings: Any = None) -> str:
    return (getattr(settings, "llm_base_url", None) or os.environ.get("VOICEBOT_WORKER_LLM_BASE_URL")
            or DEFAULT_LLM_BASE_URL)


def require_model(path: Path, what: str) -> Path:
    if not path.exists():
        raise MissingModelError(f"{what} is missing at {path}: {FETCH_HINT}")
    return path


def whisper_model_dir(settings: Any = None) -> Path:
    directory = models_dir(settings) / WHISPER_DIR
    require_model(directory / "model.bin", "whisper tiny.en (CTranslate2)")
    return directory


def piper_model_path(settings: Any = None) -> Path:
    path = models_dir(settings) / PIPER_DIR / f"{PIPER_VOICE}.onnx"
    require_model(path.with_name(f"{path.name}.json"), "Piper voice config")
    return require_model(path, "Piper voice")


# ---------------------------------------------------------------------------------------------- STT
@lru_cache(maxsize=4)
def shared_whisper_model(model_dir: str) -> WhisperModel:
    from faster_whisper import WhisperModel

    # int8 is the fast path on CPU; CTranslate2 serializes concurrent calls on one model itself.
    return WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)


class LocalWhisperSTTService(WhisperSTTService):
    """pipecat's WhisperSTTService on a local CTranslate2 folder, the model shared across calls."""

    def __init__(self, model_dir: Path, **kwargs: Any) -> None:
        super().__init__(
            device="cpu",
            compute_type="int8",
            settings=WhisperSTTService.Settings(model=str(model_dir), language=Language.EN),
            **kwargs,
        )

    def _load(self) -> None:
        self._model = shared_whisper_model(str(self._settings.model))


# ---------------------------------------------------------------------------------------------- TTS
@lru_cache(maxsize=1)
def shared_hibari() -> Any:
    try:
        from hibari import Hibari
    except ImportError as exc:
        raise MissingModelError("hibari-tts is not installed (it is pinned in requirements.lock)") from exc
    engine = Hibari(voice=HIBARI_VOICE, threads=1)
    engine("Ready.")  # loads the lexicons and the G2P tagger now rather than on the first turn
    return engine


class HibariTTSService(TTSService):
    """hibari (a Kokoro-distilled 8 MB ONNX voice, 24 kHz): ~30 ms per short sentence here."""

    HIBARI_RATE = 24000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model="hibari", voice=HIBARI_VOICE, language="en"),
            **kwargs,
        )
        self._engine = shared_hibari()
        self._lock = threading.Lock()  # one ONNX session shared by every call of this process

    def can_generate_metrics(self) -> bool:
        return True

    def _sentences_pcm(self, text: str) -> Iterator[bytes]:
        # The lock is taken per sentence, never across a yield: an interrupted turn abandons this
        # generator half-way and must not leave the lock held.
        with self._lock:
            phonemes = self._engine.phonemize(text)
        for sentence in phonemes:
            with self._lock:
                samples = self._engine.from_ids(self._engine.ids(sentence))
            yield (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        await self.start_tts_usage_metrics(text)
        try:
            async for frame in self._stream_audio_frames_from_iterator(
                _in_thread(self._sentences_pcm(text)), in_sample_rate=self.HIBARI_RATE, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:  # a bad sentence must not end the call
            yield ErrorFrame(error=f"hibari TTS failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Drive a blocking generator from a worker thread, one item at a time."""
    done = object()
    while True:
        chunk = await asyncio.to_thread(next, chunks, done)
        if chunk is done:
            return
        yield chunk  # type: ignore[misc]


def build_piper_tts(settings: Any = None) -> TTSService:
    """pipecat's PiperTTSService on the local voice (it loads the voice per instance: ~1-4 s)."""
    from pipecat.services.piper.tts import PiperTTSService

    model_path = piper_model_path(settings)
    return PiperTTSService(download_dir=model_path.parent, settings=PiperTTSService.Settings(voice=PIPER_VOICE))


# ---------------------------------------------------------------------------------------------- LLM
class LocalOpenAILLMService(OpenAILLMService):
    """OpenAILLMService that also recognises tool calls a small model writes as plain text.

    Qwen2.5 1.5B answers "transfer me to a person" with the text `{"name": "transfer_to_human",
    "arguments": {}}` (sometimes inside <tool_call> tags, sometimes with doubled braces) instead of a
    structured tool call, and the TTS would read that JSON aloud. A reply that starts like JSON is
    held back; a call of a registered function runs as one, a call of any other function is dropped
    (logged), and anything else is spoken.
    """

    _JSON_START = ("{", "<tool_call>")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held_text: str | None = None  # None: not decided yet for this reply
        self._holding = False

    async def prefill(self, context: LLMContext) -> float:
        """Process this call's prompt (system prompt, tools, greeting) now, e.g. while the greeting
        plays: llama.cpp keeps it in its prompt cache, so the first caller turn only pays for its own
        words. Without it, a ~300-token prompt with tools costs seconds on 2 cores. Returns seconds."""
        started = time.monotonic()
        try:
            invocation = await self.get_llm_adapter().get_llm_invocation_params(
                context, system_instruction=assert_given(self._settings.system_instruction),
                convert_developer_to_user=not self.supports_developer_role)
            params = self.build_chat_completion_params(invocation)
            params.pop("stream_options", None)
            params.pop("max_completion_tokens", None)  # one unambiguous limit: max_tokens
            params.update(stream=False, max_tokens=1)
            await self._client.chat.completions.create(**params)
        except Exception as exc:  # an unreachable server shows up on the first turn anyway
            logger.warning("local LLM prompt prefill failed: %s", exc)
        return time.monotonic() - started

    async def _process_context(self, context: LLMContext) -> None:
        self._held_text, self._holding = "", False
        try:
            await super()._process_context(context)
        finally:
            held, self._held_text, self._holding = self._held_text, None, False
        if not held:
            return
        call = self._text_tool_call(held)
        if call is None:
            await super()._push_llm_text(held)
        elif call[0] in self._functions:
            await self.run_function_calls([FunctionCallFromLLM(
                function_name=call[0], tool_call_id=f"call_{uuid.uuid4().hex[:24]}", arguments=call[1],
                context=context)])
        else:
            # Small models invent tools ("book_plumber"); reading that JSON aloud is worse than silence.
            logger.warning("local LLM wrote a call of unknown function %r as text; not speaking it", call[0])

    async def _push_llm_text(self, text: str) -> None:
        if self._held_text is None:
            await super()._push_llm_text(text)
            return
        if self._holding:
            self._held_text += text
            return
        pending = self._held_text + text
        stripped = pending.lstrip()
        if not stripped or any(start.startswith(stripped) for start in self._JSON_START):
            self._held_text = pending  # whitespace, or a prefix of "<tool_call>": undecided
        elif any(stripped.startswith(start) for start in self._JSON_START):
            self._held_text, self._holding = pending, True
        else:
            self._held_text = None  # ordinary speech: stream it from here on
            await super()._push_llm_text(pending)

    @staticmethod
    def _text_tool_call(text: str) -> tuple[str, dict[str, Any]] | None:
        """(name, arguments) when the text is one tool call written as JSON, else None."""
        body = text.strip().removeprefix("<tool_call>").removesuffix("</tool_call>").strip()
        for candidate in (body, body[1:-1] if body.startswith("{{") and body.endswith("}}") else None):
            if not candidate:
                continue
            try:
                parsed = json.loads(candidate)
            except ValueError:
                continue
            if (isinstance(parsed, dict) and isinstance(parsed.get("name"), str)
                    and isinstance(parsed.get("arguments", {}), dict)):
                return parsed["name"], dict(parsed.get("arguments") or {})
        return None


def build_llm(settings: Any, options: dict[str, Any]) -> LLMService:
    return LocalOpenAILLMService(
        api_key="local-llm-needs-no-key",
        base_url=llm_base_url(settings),
        settings=OpenAILLMService.Settings(
            model=str(options.get("llm_model", "local")),
            temperature=float(options.get("temperature", 0.3)),
            max_tokens=int(options.get("max_tokens", 150)),
        ),
    )


# ---------------------------------------------------------------------------------------------- all
def preload(settings: Any = None, tts: str = "hibari") -> None:
    """Load the shared models now (e.g. at worker start) so the first call starts without a pause."""
    shared_whisper_model(str(whisper_model_dir(settings)))
    if tts == "hibari":
        shared_hibari()


def build_local_services(profile: AgentProfile, settings: WorkerSettings) -> ProviderServices:
    from voicebot_worker.providers import ProviderServices

    options = profile.provider_options
    tts_engine = str(options.get("tts", "hibari"))
    if tts_engine not in ("hibari", "piper"):
        raise ValueError(f"agent profile {profile.name!r}: local tts must be hibari or piper, not {tts_engine!r}")
    stt = LocalWhisperSTTService(whisper_model_dir(settings))
    tts = HibariTTSService() if tts_engine == "hibari" else build_piper_tts(settings)
    return ProviderServices(stt=stt, llm=build_llm(settings, options), tts=tts,
                            pipeline_sample_rate=PIPELINE_SAMPLE_RATE)
