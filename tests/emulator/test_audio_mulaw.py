"""G.711 mu-law, WAV and framing helpers."""

from __future__ import annotations

import warnings

import numpy as np

from voicebot_core import audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference G.711 implementation on 3.11


def test_mulaw_encode_matches_g711_reference_for_every_sample() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert audio.pcm16_to_mulaw(samples) == audioop.lin2ulaw(samples.tobytes(), 2)
    assert audio.pcm16_to_mulaw(samples.tobytes()) == audioop.lin2ulaw(samples.tobytes(), 2)


def test_mulaw_decode_matches_g711_reference_for_every_code() -> None:
    codes = bytes(range(256))
    reference = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    assert np.array_equal(audio.mulaw_to_pcm16(codes), reference)
    assert audio.mulaw_to_pcm16(bytes([audio.MULAW_SILENCE]))[0] == 0


def test_frames_are_20ms_and_padded_with_silence() -> None:
    frames = list(audio.mulaw_frames(b"\x00" * 400))
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[-1][80:] == bytes([0xFF]) * 80


def test_wav_round_trip_mono_and_stereo(tmp_path) -> None:
    mono = (np.sin(np.arange(800) / 5) * 8000).astype(np.int16)
    audio.write_wav(tmp_path / "m.wav", mono, 8000)
    data, rate = audio.read_wav(tmp_path / "m.wav")
    assert rate == 8000 and np.array_equal(data, mono)
    stereo = np.stack([mono, -mono], axis=1)
    audio.write_wav(tmp_path / "s.wav", stereo, 16000)
    data, rate = audio.read_wav(tmp_path / "s.wav")
    assert rate == 16000 and data.shape == (800, 2) and np.array_equal(data, stereo)
    # mono at 8 kHz from a 16 kHz stereo file: half the samples
    assert audio.read_wav_mono(tmp_path / "s.wav", 8000).shape[0] == 400
