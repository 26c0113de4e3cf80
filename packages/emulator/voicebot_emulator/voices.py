"""Caller voices: text -> int16 PCM at a requested rate. `formant` needs no model.

`piper` and `hibari` (see neural_voice) load their weights from the models directory the first time
a script asks for them; they are never downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from voicebot_simulation import formant_voice

Voice = Callable[[str, int], np.ndarray]

_VOICES: dict[str, Voice] = {"formant": lambda text, rate: formant_voice.synthesize(text, rate)}
_LOCK = threading.Lock()


def _neural(name: str) -> Voice | None:
    from voicebot_emulator import neural_voice

    factories: dict[str, Callable[[], Voice]] = {"piper": neural_voice.PiperVoice,
                                                 "hibari": neural_voice.HibariVoice}
    factory = factories.get(name)
    return factory() if factory else None


def register(name: str, voice: Voice) -> None:
    _VOICES[name] = voice


def get(name: str) -> Voice:
    with _LOCK:
        if name not in _VOICES and (voice := _neural(name)) is not None:
            _VOICES[name] = voice
    try:
        return _VOICES[name]
    except KeyError:
        raise KeyError(f"unknown caller voice {name!r} (known: formant, piper, hibari)") from None
