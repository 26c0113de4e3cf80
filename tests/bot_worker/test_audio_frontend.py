"""The worker's shared audio work: Silero VAD batched across calls, the 8 kHz noise filter, Smart Turn
on one shared thread, and the sink that ends the caller's frames after the user aggregator."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from pipecat.frames.frames import InputAudioRawFrame, TextFrame
from pipecat.tests.utils import run_test

from voicebot_core.audio import mulaw_to_pcm16, pcm16_to_mulaw
from voicebot_simulation.formant_voice import synthesize
from voicebot_worker import turns
from voicebot_worker.noise import PhoneNoiseFilter
from voicebot_worker.processors import CallerAudioSink
from voicebot_worker.turns import SharedSmartTurnAnalyzer, smart_turn_executor
from voicebot_worker.vad import BatchedSileroVAD, batcher

PARAMS = VADParams(start_secs=0.08, stop_secs=0.2, confidence=0.7, min_volume=0.3)


def phone_speech(text: str, lead_s: float = 0.5, tail_s: float = 0.6) -> bytes:
    speech = mulaw_to_pcm16(pcm16_to_mulaw(synthesize(text, 8000)))
    return np.concatenate([np.zeros(int(lead_s * 8000), np.int16), speech,
                           np.zeros(int(tail_s * 8000), np.int16)]).astype("<i2").tobytes()


async def test_batched_vad_scores_like_pipecats_own_and_batches_calls():
    audio = phone_speech("I would like to check my order status")
    own = SileroVADAnalyzer(params=PARAMS)
    own.set_sample_rate(8000)
    calls = [BatchedSileroVAD(params=PARAMS) for _ in range(3)]
    for vad in calls:
        vad.set_sample_rate(8000)
    batches_before = batcher().batches
    own_states, batched_states = [], []
    for offset in range(0, len(audio), 320):
        chunk = audio[offset:offset + 320]
        own_states.append(await own.analyze_audio(chunk))
        states = await asyncio.gather(*(vad.analyze_audio(chunk) for vad in calls))
        assert len(set(states)) == 1  # the same audio in three calls: the same state, batched together
        batched_states.append(states[0])
    assert VADState.SPEAKING in batched_states
    assert batched_states == own_states
    windows = len(audio) // 512
    assert batcher().batches - batches_before <= windows + 1  # three calls, one batch per window


async def test_noise_filter_lowers_line_noise_keeps_speech_and_frame_sizes():
    rng = np.random.default_rng(1)
    speech = np.frombuffer(phone_speech("thank you, that is all for today", lead_s=2.0), dtype=np.int16)
    noisy = np.clip(speech + rng.standard_normal(speech.size) * 300, -32768, 32767).astype(np.int16)
    line = PhoneNoiseFilter()
    await line.start(8000)
    out = []
    for offset in range(0, noisy.size, 160):
        chunk = noisy[offset:offset + 160].tobytes()
        filtered = await line.filter(chunk)
        assert len(filtered) == len(chunk)
        out.append(np.frombuffer(filtered, dtype=np.int16))
    await line.stop()
    filtered = np.concatenate(out).astype(np.float64)[160:]  # one 20 ms frame of delay
    noise_in = noisy[8000:15000].astype(np.float64).std()
    noise_out = filtered[8000:15000].std()
    assert noise_out < noise_in / 2, (noise_in, noise_out)  # >= 6 dB less line noise
    voiced = slice(16000 + 800, 16000 + 8000)
    assert filtered[voiced].std() > 0.7 * speech[voiced].astype(np.float64).std()


async def test_vad_still_hears_noisy_speech_through_the_filter():
    rng = np.random.default_rng(2)
    speech = np.frombuffer(phone_speech("wait, one more question", lead_s=1.5), dtype=np.int16)
    noisy = np.clip(speech + rng.standard_normal(speech.size) * 500, -32768, 32767).astype(np.int16)
    line = PhoneNoiseFilter()
    await line.start(8000)
    vad = BatchedSileroVAD(params=PARAMS)
    vad.set_sample_rate(8000)
    states = []
    for offset in range(0, noisy.size, 160):
        states.append(await vad.analyze_audio(await line.filter(noisy[offset:offset + 160].tobytes())))
    first = states.index(VADState.SPEAKING)
    assert 1.5 <= first * 0.02 <= 1.5 + 0.25, first * 0.02  # no false start in the noise, prompt onset
    await line.stop()


async def test_smart_turn_calls_share_one_thread_and_skip_stale_inferences(monkeypatch):
    analyzer = SharedSmartTurnAnalyzer()
    assert analyzer._model_executor is SharedSmartTurnAnalyzer()._model_executor is smart_turn_executor()
    calls = []
    monkeypatch.setattr(analyzer, "_process_speech_segment",
                        lambda buffer: calls.append(buffer) or (EndOfTurnState.INCOMPLETE, None))
    assert analyzer._segment_unless_stale([], time.monotonic()) == (EndOfTurnState.INCOMPLETE, None)
    skipped = turns.stats["skipped"]
    state, _ = analyzer._segment_unless_stale([], time.monotonic() - turns.SMART_TURN_MAX_QUEUE_S - 0.1)
    assert state == EndOfTurnState.COMPLETE and len(calls) == 1 and turns.stats["skipped"] == skipped + 1
    await analyzer.cleanup()
    assert not smart_turn_executor()._shutdown  # the shared thread outlives a call


async def test_the_callers_frames_end_at_the_sink_and_everything_else_passes():
    audio = InputAudioRawFrame(audio=b"\0\0" * 160, sample_rate=8000, num_channels=1)
    await run_test(CallerAudioSink(), frames_to_send=[audio, TextFrame("hi")], expected_down_frames=[TextFrame])


async def test_a_turn_the_silence_fallback_ended_asks_the_shared_thread_nothing(monkeypatch):
    analyzer = SharedSmartTurnAnalyzer()
    analyzer._sample_rate = 8000
    analyzer._stop_ms = 200  # the fallback after 0.2 s of silence, for a short test
    hops = []
    monkeypatch.setattr(analyzer, "_segment_unless_stale", lambda *args: hops.append(args) or (None, None))
    speech, silence = b"\x10\x00" * 160, b"\x00\x00" * 160
    assert analyzer.append_audio(speech, is_speech=True) == EndOfTurnState.INCOMPLETE
    states = [analyzer.append_audio(silence, is_speech=False) for _ in range(10)]
    assert states[-1] == EndOfTurnState.COMPLETE  # 0.2 s of silence: the buffer is cleared
    await analyzer.analyze_end_of_turn()  # what pipecat's stop strategy then awaits
    assert hops == []  # no queueing behind other calls' inferences for a verdict already taken
    await analyzer.cleanup()
