"""Telephony audio helpers: G.711 mu-law, resampling, WAV files, 20 ms framing.

Twilio Media Streams carry 8 kHz mono mu-law in 20 ms frames (160 bytes). Everything here is
plain numpy (no `audioop`, which is gone in Python 3.13) and bit-exact with G.711.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TELEPHONY_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = TELEPHONY_RATE * FRAME_MS // 1000  # 160 samples = 160 mu-law bytes
MULAW_SILENCE = 0xFF  # encodes linear 0

_BIAS = 0x84


def _build_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


_DECODE_TABLE = _build_decode_table()


def _build_encode_table() -> np.ndarray:
    """mu-law byte for every int16 value, computed once (64 KiB) so encoding is a lookup.

    Same arithmetic as the classic Sun g711.c (and CPython's audioop): work on the 14-bit value
    (arithmetic shift, so negative values round toward minus infinity), then segment + mantissa.
    """
    samples14 = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(samples14 < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples14), 8159) + (_BIAS >> 2)
    # segment = number of bits above the 6 lowest ones (0..7)
    segment = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 7)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = np.where(magnitude > 0x1FFF, 0x7F, (segment << 4) | mantissa)  # beyond the top segment
    return (code ^ mask).astype(np.uint8)


_ENCODE_TABLE = _build_encode_table()


def pcm16_to_mulaw(pcm: np.ndarray | bytes) -> bytes:
    """Linear int16 samples (array or little-endian bytes) -> mu-law bytes."""
    samples = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray) else pcm
    return _ENCODE_TABLE[samples.astype(np.int32) + 32768].tobytes()


def mulaw_to_pcm16(mulaw: bytes) -> np.ndarray:
    """mu-law bytes -> int16 samples."""
    return _DECODE_TABLE[np.frombuffer(mulaw, dtype=np.uint8)]


def mulaw_to_pcm16_bytes(mulaw: bytes) -> bytes:
    return mulaw_to_pcm16(mulaw).astype("<i2").tobytes()


def float_to_pcm16(signal: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16, clipped."""
    return np.clip(np.round(signal * 32767.0), -32768, 32767).astype(np.int16)


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """int16 mono (or (n, channels)) resampling with soxr (a pipecat dependency)."""
    if from_rate == to_rate or len(pcm) == 0:
        return pcm.astype(np.int16, copy=False)
    import soxr  # local: only callers that resample pay the import

    return soxr.resample(pcm.astype(np.int16, copy=False), from_rate, to_rate).astype(np.int16)


def mulaw_frames(mulaw: bytes, frame_bytes: int = FRAME_SAMPLES) -> Iterator[bytes]:
    """Split into 20 ms frames; the last one is padded with mu-law silence."""
    for offset in range(0, len(mulaw), frame_bytes):
        frame = mulaw[offset : offset + frame_bytes]
        if len(frame) < frame_bytes:
            frame += bytes([MULAW_SILENCE]) * (frame_bytes - len(frame))
        yield frame


def silence_mulaw(duration_s: float, rate: int = TELEPHONY_RATE) -> bytes:
    return bytes([MULAW_SILENCE]) * round(duration_s * rate)


def write_wav(path: str | Path, pcm: np.ndarray, sample_rate: int) -> Path:
    """Write int16 audio: shape (n,) for mono or (n, channels) for multi-channel."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(pcm, dtype=np.int16)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(data.astype("<i2").tobytes())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """int16 samples ((n,) mono or (n, channels)) and the sample rate. 8/16-bit PCM only."""
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 1:  # unsigned 8-bit WAV
        data = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    else:
        raise ValueError(f"{path}: {8 * width}-bit WAV is not supported (16-bit PCM expected)")
    if channels > 1:
        data = data.reshape(-1, channels)
    return data, rate


def read_wav_mono(path: str | Path, sample_rate: int = TELEPHONY_RATE) -> np.ndarray:
    """Any 8/16-bit WAV as int16 mono at `sample_rate` (channels averaged)."""
    data, rate = read_wav(path)
    if data.ndim > 1:
        data = data.astype(np.int32).mean(axis=1).astype(np.int16)
    return resample(data, rate, sample_rate)
