"""Local providers: whisper tiny.en STT, an OpenAI-compatible local LLM server, hibari or Piper TTS.

Everything loads from the models directory (`make models`, VOICEBOT_MODELS_DIR, default
~/.cache/voicebot/models) and nothing is downloaded at run time. The LLM runs in its own process
(`python -m voicebot_worker.llm_server`), reached at `llm_base_url` by the client in local_llm.py.

Whisper expects 16 kHz, so these services ask for a 16 kHz pipeline (the Twilio serializer upsamples
the 8 kHz call audio). Whisper and hibari are loaded once per process and shared by every call;
call `preload()` at worker start so that the first call does not load them on the event loop.

provider_options: tts (hibari|piper, default hibari), and the LLM's (local_llm.py).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.services.tts_service import TTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language

from voicebot_core.profiles import AgentProfile
from voicebot_worker.providers.first_clause import FirstClauseTextAggregator
from voicebot_worker.providers.local_llm import build_llm

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from voicebot_worker.providers import ProviderServices
    from voicebot_worker.settings import WorkerSettings

PIPELINE_SAMPLE_RATE = 16000  # whisper's native rate
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


class GreedyWhisper:
    """A shared WhisperModel decoding greedily: on our Piper callers through the phone channel, beam 1
    gave the same words as faster-whisper's default beam 5 in 10 of 10 lines, in 255 ms per turn
    instead of 330 (bench/voice_to_voice.py's lines)."""

    DECODING: ClassVar[dict[str, Any]] = {
        "beam_size": 1, "without_timestamps": True, "condition_on_previous_text": False}

    def __init__(self, model: WhisperModel) -> None:
        self._model = model
        self.supported_languages = model.supported_languages

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> Any:
        return self._model.transcribe(audio, **{**kwargs, **self.DECODING})


class LocalWhisperSTTService(WhisperSTTService):
    """pipecat's WhisperSTTService on a local CTranslate2 folder, the model shared across calls.

    pipecat marks every transcript of a segmented STT final, and its turn-analyzer stop strategy ends
    the turn on a final transcript once the turn analyzer says the turn is complete. Whisper takes
    0.3-0.6 s per segment here, so in "Hi, [pause] my sink is leaking." the transcript of "Hi" arrives
    after the second segment began; at that segment's end the strategy took "Hi" for the whole turn,
    the LLM answered it and was interrupted by the real transcript 0.3 s later, ~1.3 s lost. A
    transcript that arrives after the caller began another segment is therefore not final here: the
    strategy waits for that segment's own transcript (or its STT timeout, for a segment whisper finds
    empty).
    """

    STT_TIMEOUT_S = 1.5  # caller speech end -> final transcript, beyond what whisper tiny.en takes here

    def __init__(self, model_dir: Path, **kwargs: Any) -> None:
        super().__init__(
            device="cpu",
            compute_type="int8",
            settings=WhisperSTTService.Settings(model=str(model_dir), language=Language.EN),
            ttfs_p99_latency=self.STT_TIMEOUT_S,
            **kwargs,
        )

    def _load(self) -> None:
        self._model = GreedyWhisper(shared_whisper_model(str(self._settings.model)))

    def _caller_went_on(self) -> bool:
        """The caller is speaking again, or another segment waits for transcription."""
        return self._user_speaking or not self._segment_queue.empty()

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, TranscriptionFrame) and self._caller_went_on():
            frame.finalized = False
            # past SegmentedSTTService.push_frame, which would mark it final again
            await super(SegmentedSTTService, self).push_frame(frame, direction)
            return
        await super().push_frame(frame, direction)


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
        # pipecat builds its sentence aggregator itself, with no parameter to pass another
        self._text_aggregator = FirstClauseTextAggregator(language=self._text_aggregator.language)

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
