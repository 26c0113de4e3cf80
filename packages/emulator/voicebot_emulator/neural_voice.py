"""Neural caller voices: text -> int16 PCM at a requested rate, like `voices.Voice`.

Whisper tiny.en transcribes these reliably through the 8 kHz mu-law phone channel, unlike the formant
or espeak voices, so end-to-end tests with real STT use them. Weights are only read from the models
directory (`make models`); nothing is downloaded at run time.

- `PiperVoice`: Piper en_US-joe-medium (male, 22.05 kHz) from MODELS_DIR/piper-joe.
- `HibariVoice`: hibari's bundled "heart" voice (female, 24 kHz), shipped inside the hibari-tts wheel.

    voice = PiperVoice(models_dir / "piper-joe")
    pcm = voice.synthesize("I'd like to book a table.", sample_rate=8000)
    voices.register("piper", voice)  # a Voice: voice(text, rate)
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from voicebot_core import audio

PIPER_VOICE_DIR = "piper-joe"
PIPER_VOICE_NAME = "en_US-joe-medium"
HIBARI_BUNDLED_VOICE = "heart"


class MissingVoiceModelError(FileNotFoundError):
    """The voice's weights are not in the models directory."""


def default_models_dir() -> Path:
    configured = os.environ.get("VOICEBOT_MODELS_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "voicebot" / "models"


class PiperVoice:
    """Piper caller voice. Loads the ONNX model once; synthesis is serialized (one ONNX session).

    deterministic=True turns Piper's sampling noise off: the same text gives the same audio, so a
    test's caller says its lines identically on every run (whisper transcribed 5 of 5 test sentences
    identically on repeated runs this way; with the voice's default noise, words sometimes change).
    """

    def __init__(self, model_dir: str | Path | None = None, *, voice_name: str = PIPER_VOICE_NAME,
                 length_scale: float | None = None, deterministic: bool = True) -> None:
        model_dir = Path(model_dir) if model_dir else default_models_dir() / PIPER_VOICE_DIR
        model_path = model_dir / f"{voice_name}.onnx"
        if not model_path.is_file() or not model_path.with_name(f"{model_path.name}.json").is_file():
            raise MissingVoiceModelError(
                f"Piper voice {model_path} (and its .onnx.json) is missing: run `make models`"
            )
        try:
            from piper import PiperVoice as _Piper
            from piper import SynthesisConfig
        except ImportError as exc:  # the emulator image leaves the neural-voice extra out
            raise MissingVoiceModelError("piper-tts is not installed (voicebot-emulator[neural-voice])") from exc

        self._piper = _Piper.load(model_path)
        noise = {"noise_scale": 0.0, "noise_w_scale": 0.0} if deterministic else {}
        self._config = SynthesisConfig(length_scale=length_scale, **noise)
        self._lock = threading.Lock()
        self.native_rate: int = self._piper.config.sample_rate

    def synthesize(self, text: str, sample_rate: int = 8000) -> np.ndarray:
        with self._lock:
            chunks = [chunk.audio_int16_array for chunk in self._piper.synthesize(text, self._config)]
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return audio.resample(pcm, self.native_rate, sample_rate)

    def __call__(self, text: str, sample_rate: int) -> np.ndarray:
        return self.synthesize(text, sample_rate)


class HibariVoice:
    """hibari caller voice; `seed` fixes its noise so the same text gives the same samples."""

    def __init__(self, *, seed: int | None = 0) -> None:
        try:
            from hibari import Hibari
        except ImportError as exc:
            raise MissingVoiceModelError("hibari-tts is not installed (it is pinned in requirements.lock)") from exc
        # Only the bundled voice: any other hibari voice would be downloaded on first use.
        self._hibari = Hibari(voice=HIBARI_BUNDLED_VOICE, threads=1)
        self._seed = seed
        self._lock = threading.Lock()
        self.native_rate: int = int(self._hibari.sample_rate)

    def synthesize(self, text: str, sample_rate: int = 8000) -> np.ndarray:
        with self._lock:
            samples = self._hibari(text, seed=self._seed)
        return audio.resample(audio.float_to_pcm16(samples), self.native_rate, sample_rate)

    def __call__(self, text: str, sample_rate: int) -> np.ndarray:
        return self.synthesize(text, sample_rate)
