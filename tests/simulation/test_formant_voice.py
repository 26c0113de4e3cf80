"""The formant voice is speech to pipecat's Silero VAD, through mu-law and through RNNoise."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.audio.filters.rnnoise_filter import RNNoiseFilter
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState

from voicebot_core import audio
from voicebot_simulation import formant_voice

UTTERANCES = [
    "I would like to check my order status",
    "wait, one more question",
    "My account number is 12345, thanks!",
    "Thanks for calling. Goodbye!",
    "no",
]
LEAD_S, TAIL_S = 0.6, 1.2
WINDOW_BYTES = 512  # Silero at 8 kHz scores 256-sample windows


def _telephone(pcm: np.ndarray) -> bytes:
    """Silence + utterance + silence through a mu-law 8 kHz round trip, as int16 bytes."""
    mulaw = audio.silence_mulaw(LEAD_S) + audio.pcm16_to_mulaw(pcm) + audio.silence_mulaw(TAIL_S)
    return audio.mulaw_to_pcm16_bytes(mulaw)


async def _rnnoise(pcm_bytes: bytes) -> bytes:
    noise_filter = RNNoiseFilter()
    await noise_filter.start(8000)
    out = bytearray()
    for offset in range(0, len(pcm_bytes), 320):  # 20 ms chunks, as a transport would
        out += await noise_filter.filter(pcm_bytes[offset : offset + 320])
    await noise_filter.stop()
    return bytes(out)


def _confidences(pcm_bytes: bytes) -> np.ndarray:
    vad = SileroVADAnalyzer(sample_rate=8000)
    vad.set_sample_rate(8000)
    return np.array([
        float(np.ravel(vad.voice_confidence(pcm_bytes[o : o + WINDOW_BYTES]))[0])
        for o in range(0, len(pcm_bytes) - WINDOW_BYTES + 1, WINDOW_BYTES)
    ])


def _speech_segments(pcm_bytes: bytes) -> int:
    """Speech segments pipecat's VAD state machine (default params) reports, 20 ms at a time."""
    vad = SileroVADAnalyzer(sample_rate=8000)
    vad.set_sample_rate(8000)
    segments, was_speaking = 0, False
    for offset in range(0, len(pcm_bytes), 320):
        state = vad._run_analyzer(pcm_bytes[offset : offset + 320])
        speaking = state in (VADState.SPEAKING, VADState.STOPPING)
        segments += speaking and not was_speaking
        was_speaking = speaking
    return segments


def test_synthesis_is_deterministic_and_length_follows_text() -> None:
    a = formant_voice.synthesize("check my order")
    assert a.dtype == np.int16
    assert np.array_equal(a, formant_voice.synthesize("check my order"))
    assert not np.array_equal(a, formant_voice.synthesize("check my orders"))
    for text in UTTERANCES:
        seconds = len(formant_voice.synthesize(text)) / 8000
        assert seconds == pytest.approx(formant_voice.duration_s(text), abs=0.01)
        if len(text) >= 10:
            assert 0.055 * len(text) <= seconds <= 0.09 * len(text) + 0.2
        assert seconds >= 0.6  # even "no" is long enough for a VAD to start on
    for text in UTTERANCES:  # no internal pause over 150 ms (20 ms frames below -50 dBFS)
        pcm = formant_voice.synthesize(text).astype(np.float64)
        frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
        quiet = np.sqrt(np.mean(frames**2, axis=1)) < 32768 * 10 ** (-50 / 20)
        longest, run = 0, 0
        for is_quiet in quiet[3:-3]:  # ignore the fade in/out
            run = run + 1 if is_quiet else 0
            longest = max(longest, run)
        assert longest * 0.02 <= 0.15, text
    wideband = formant_voice.synthesize("hello", sample_rate=16000)
    assert len(wideband) == 2 * len(formant_voice.synthesize("hello"))


@pytest.mark.parametrize("with_rnnoise", [False, True], ids=["mulaw", "mulaw+rnnoise"])
async def test_silero_hears_one_speech_segment_per_utterance(with_rnnoise: bool) -> None:
    window_s = WINDOW_BYTES / 2 / 8000
    for text in UTTERANCES:
        pcm = formant_voice.synthesize(text)
        heard = _telephone(pcm)
        if with_rnnoise:
            heard = await _rnnoise(heard)
        confidences = _confidences(heard)
        first, last = int(LEAD_S / window_s) + 1, int((LEAD_S + len(pcm) / 8000) / window_s) - 1
        inside = confidences[first:last]
        assert np.mean(inside > 0.5) >= 0.7, (text, inside.round(2))
        assert confidences[: int(LEAD_S / window_s) - 1].max() < 0.5, text
        assert confidences[last + 8 :].max() < 0.5, text  # silence after the utterance
        assert _speech_segments(heard) == 1, text


def test_silence_is_not_speech() -> None:
    silence = audio.mulaw_to_pcm16_bytes(audio.silence_mulaw(2.0))
    assert _confidences(silence).max() < 0.2
    assert _speech_segments(silence) == 0
