"""A deterministic speech-like voice: formant synthesis that voice-activity detectors accept.

Tests need "speech" without a TTS model: audio that Silero VAD classifies as voice, whose length
follows the text, and that is byte-identical for the same text. Each letter becomes a phone
(vowel, voiced consonant, fricative, plosive, gap); voiced phones are a sum of harmonics of a
jittered, declining pitch contour, weighted by a 4-formant vocal-tract envelope that glides
between phone targets; consonants add band-shaped noise. Syllables get a ~4-5 Hz amplitude
envelope. Word gaps stay slightly voiced and punctuation pauses stay under 150 ms, so one text is
one continuous speech segment for a VAD.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from voicebot_core.audio import float_to_pcm16

# (F1, F2, F3, F4) targets in Hz; roughly an adult male speaker.
_VOWELS: dict[str, tuple[float, float, float, float]] = {
    "a": (730, 1090, 2440, 3300),
    "e": (530, 1840, 2480, 3400),
    "i": (300, 2200, 2950, 3500),
    "o": (570, 840, 2410, 3300),
    "u": (330, 1020, 2240, 3300),
    "y": (400, 1900, 2600, 3400),
}
_NASAL = (280, 1300, 2300, 3300)
_LIQUID = (360, 1100, 2000, 3200)
_VOICED_CONSONANTS = {"m": _NASAL, "n": _NASAL, "l": _LIQUID, "r": (420, 1300, 1600, 3200),
                      "w": (300, 700, 2200, 3200), "v": (350, 1400, 2400, 3300),
                      "z": (300, 1600, 2500, 3400), "j": (300, 1800, 2600, 3400)}
_FRICATIVES = {"s": "high", "z": "high", "c": "high", "x": "high", "f": "flat", "v": "flat",
               "h": "flat", "j": "mid", "q": "mid"}
_PLOSIVES = {"p": False, "t": False, "k": False, "b": True, "d": True, "g": True}
_PAUSES = {",": 0.10, ";": 0.12, ":": 0.12, ".": 0.14, "!": 0.14, "?": 0.14}

_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])
_CONTROL_RATE = 400  # formant/gain control points per second, interpolated to audio rate
_VOICED_TOP_HZ = 5000.0  # harmonics above this carry almost no energy; skipping them saves time
_MIN_UTTERANCE_S = 0.6  # shorter texts repeat their syllables: a VAD needs ~0.2 s of speech to start


@dataclass(frozen=True)
class _Phone:
    duration_s: float
    formants: tuple[float, float, float, float]
    voicing: float  # 0..1 gain of the harmonic source
    noise: float  # 0..1 gain of fricative noise
    noise_band: str = "flat"
    syllable_nucleus: bool = False
    plosive: bool = False  # closure then release burst
    accent: float = 0.0  # pitch lift on stressed nuclei


def _phones(text: str, rng: np.random.Generator) -> list[_Phone]:
    phones: list[_Phone] = []
    previous_vowel = _VOWELS["e"]
    for char in text.lower():
        if char in _VOWELS:
            previous_vowel = _VOWELS[char]
            accent = float(rng.uniform(0.0, 0.12)) if rng.random() < 0.4 else 0.0
            phones.append(_Phone(0.095, previous_vowel, 1.0, 0.0, syllable_nucleus=True, accent=accent))
        elif char in _PLOSIVES:
            voiced = _PLOSIVES[char]
            phones.append(_Phone(0.065, previous_vowel, 0.25 if voiced else 0.12, 0.5, "flat", plosive=True))
        elif char in _VOICED_CONSONANTS:
            noise = 0.35 if char in _FRICATIVES else 0.0
            phones.append(_Phone(0.065, _VOICED_CONSONANTS[char], 0.7, noise, _FRICATIVES.get(char, "flat")))
        elif char in _FRICATIVES:
            phones.append(_Phone(0.07, previous_vowel, 0.12, 0.6, _FRICATIVES[char]))
        elif char.isalpha():  # other consonants, as a soft voiced glide
            phones.append(_Phone(0.06, _LIQUID, 0.6, 0.1))
        elif char.isdigit():  # a digit reads as a short syllable
            phones.append(_Phone(0.07, _NASAL, 0.7, 0.0))
            vowel = _VOWELS["i" if int(char) % 2 else "o"]
            phones.append(_Phone(0.09, vowel, 1.0, 0.0, syllable_nucleus=True))
        elif char in _PAUSES:
            phones.append(_Phone(_PAUSES[char], previous_vowel, 0.2, 0.0))
        else:  # word gap: a brief dip, still faintly voiced so a VAD hears one utterance
            phones.append(_Phone(0.05, _VOWELS["e"], 0.3, 0.0))
    if not any(p.syllable_nucleus for p in phones):
        phones.append(_Phone(0.2, _VOWELS["a"], 1.0, 0.0, syllable_nucleus=True))
    # "ok", "no": too short for a VAD to start on, and one long static vowel does not sound like
    # speech to it either; repeat the syllables (with a word gap) until long enough
    word = phones
    while sum(p.duration_s for p in phones) < _MIN_UTTERANCE_S:
        phones = [*phones, _Phone(0.05, _VOWELS["e"], 0.3, 0.0), *word]
    return phones


def _smooth(control: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis (edge-padded), so targets glide instead of jump."""
    if width <= 1:
        return control
    kernel = np.ones(width) / width
    pad = width // 2
    padded = np.pad(control, [(0, 0)] * (control.ndim - 1) + [(pad, width - 1 - pad)], mode="edge")
    if control.ndim == 1:
        return np.convolve(padded, kernel, mode="valid")
    return np.stack([np.convolve(row, kernel, mode="valid") for row in padded])


def _band_noise(
    rng: np.random.Generator, n: int, sample_rate: int, low_hz: float, high_hz: float
) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    band = np.fft.irfft(spectrum, n)
    return band / (np.std(band) + 1e-9)


def duration_s(text: str) -> float:
    """Length of `synthesize(text)` in seconds (without synthesizing)."""
    rng = np.random.default_rng(_seed(text))
    return sum(p.duration_s for p in _phones(text, rng)) + 2 * _EDGE_S


_EDGE_S = 0.03  # fade in/out


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def synthesize(text: str, sample_rate: int = 8000, seed_from_text: bool = True) -> np.ndarray:
    """Speech-like int16 mono audio for `text`; identical output for identical input.

    With `seed_from_text=False` the pitch/noise variation uses a fixed seed instead, so only
    the phone sequence depends on the text.
    """
    rng = np.random.default_rng(_seed(text) if seed_from_text else 0)
    phones = _phones(text, rng)

    # control-rate tracks (one value per 1/_CONTROL_RATE s)
    counts = [max(1, round(p.duration_s * _CONTROL_RATE)) for p in phones]
    edge = round(_EDGE_S * _CONTROL_RATE)
    formants = np.concatenate([np.tile(p.formants, (c, 1)) for p, c in zip(phones, counts, strict=True)]).T
    voicing = np.concatenate([np.full(c, p.voicing) for p, c in zip(phones, counts, strict=True)])
    accent = np.concatenate([np.full(c, p.accent) for p, c in zip(phones, counts, strict=True)])
    noise_gain = {band: np.concatenate([np.full(c, p.noise if p.noise_band == band else 0.0)
                                        for p, c in zip(phones, counts, strict=True)])
                  for band in ("flat", "mid", "high")}
    # plosives: closure for the first 60 %, then a short release burst
    burst = np.concatenate([
        np.r_[np.zeros(round(c * 0.6)), np.ones(c - round(c * 0.6))] if p.plosive else np.ones(c)
        for p, c in zip(phones, counts, strict=True)
    ])
    for band in noise_gain:
        noise_gain[band] = noise_gain[band] * burst
    # syllable envelope: each vowel nucleus is a raised-cosine peak, giving the ~4-5 Hz rhythm
    syllable = np.concatenate([
        0.75 + 0.25 * np.sin(np.linspace(0, np.pi, c)) if p.syllable_nucleus else np.full(c, 0.8)
        for p, c in zip(phones, counts, strict=True)
    ])
    pad = lambda track, value: np.concatenate([np.full(edge, value), track, np.full(edge, value)])  # noqa: E731
    formants = np.stack([pad(row, row[0]) for row in formants])
    voicing, accent, syllable = pad(voicing, 0.0), pad(accent, 0.0), pad(syllable, 0.0)
    noise_gain = {band: pad(track, 0.0) for band, track in noise_gain.items()}

    formants = _smooth(formants, round(0.04 * _CONTROL_RATE))  # 40 ms formant transitions
    voicing = _smooth(voicing * syllable, round(0.02 * _CONTROL_RATE))
    noise_gain = {band: _smooth(track, round(0.01 * _CONTROL_RATE)) for band, track in noise_gain.items()}

    n_control = voicing.size
    n = round(n_control * sample_rate / _CONTROL_RATE)
    t_control = np.arange(n_control) / _CONTROL_RATE
    t = np.arange(n) / sample_rate
    up = lambda track: np.interp(t, t_control, track)  # noqa: E731

    # pitch: declination from ~135 to ~105 Hz, accents, slow wander, and cycle-level jitter
    total_s = n / sample_rate
    wander = np.cumsum(rng.standard_normal(n_control)) * 0.004
    wander -= np.linspace(wander[0], wander[-1], n_control)
    f0_control = (135.0 - 30.0 * t_control / max(total_s, 0.5)) * (1.0 + _smooth(accent, 40) + wander)
    f0_control = f0_control * (1.0 + 0.01 * rng.standard_normal(n_control))
    phase = 2 * np.pi * np.cumsum(up(f0_control)) / sample_rate

    # harmonic amplitudes from the vocal-tract envelope, computed at control rate (it moves slowly)
    top_hz = min(sample_rate / 2 - 100, _VOICED_TOP_HZ)
    k = np.arange(1, int(top_hz // 90) + 1)[:, None]
    freq = k * f0_control[None, :]  # (harmonics, control points)
    gain = 1.0 / k  # glottal tilt (-12 dB/oct) plus lip radiation (+6 dB/oct)
    for formant, bandwidth in zip(formants, _BANDWIDTHS, strict=True):
        ratio = freq / formant[None, :]
        gain = gain / np.sqrt((1 - ratio**2) ** 2 + (freq * bandwidth / formant[None, :] ** 2) ** 2)
    gain = np.where(freq < top_hz, gain, 0.0)
    offsets = rng.uniform(0, 2 * np.pi, len(k))
    voiced = np.zeros(n)
    for index in range(len(k)):
        if gain[index].any():
            voiced += up(gain[index]) * np.sin((index + 1) * phase + offsets[index])
    voiced /= np.percentile(np.abs(voiced), 99) + 1e-9
    shimmer = 1.0 + 0.05 * up(rng.standard_normal(n_control))
    # breathiness: a little noise gated by the glottal cycle
    breath = 0.05 * rng.standard_normal(n) * (0.5 + 0.5 * np.cos(phase))

    nyquist = sample_rate / 2
    noise = (
        up(noise_gain["flat"]) * _band_noise(rng, n, sample_rate, 300, nyquist)
        + up(noise_gain["mid"]) * _band_noise(rng, n, sample_rate, 1800, min(3600, nyquist))
        + up(noise_gain["high"]) * _band_noise(rng, n, sample_rate, min(2500, nyquist * 0.6), nyquist)
    )
    signal = up(voicing) * (voiced * shimmer + breath) + 0.3 * noise
    signal *= 0.45 / (np.max(np.abs(signal)) + 1e-9)  # peak about -7 dBFS
    return float_to_pcm16(signal)
