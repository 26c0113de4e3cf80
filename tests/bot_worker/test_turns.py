"""Turn detection per profile; smart-turn v3 shares one ONNX session per process."""

from __future__ import annotations

import numpy as np
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy, TurnAnalyzerUserTurnStopStrategy

from voicebot_core.profiles import AgentProfile
from voicebot_simulation.formant_voice import synthesize
from voicebot_worker.turns import SharedSmartTurnAnalyzer, build_turn_strategies, shared_smart_turn_session


def test_speech_timeout_profile_uses_the_deterministic_strategy():
    strategies = build_turn_strategies(AgentProfile(turn_detection="speech_timeout"), 0.4)
    [stop] = strategies.stop
    assert isinstance(stop, SpeechTimeoutUserTurnStopStrategy)


def test_smart_turn_analyzers_share_one_session_and_predict():
    first = build_turn_strategies(AgentProfile(turn_detection="smart_turn_v3"), 0.4).stop[0]
    second = build_turn_strategies(AgentProfile(turn_detection="smart_turn_v3"), 0.4).stop[0]
    assert isinstance(first, TurnAnalyzerUserTurnStopStrategy)
    analyzers = [SharedSmartTurnAnalyzer(), SharedSmartTurnAnalyzer()]
    assert analyzers[0]._session is analyzers[1]._session is shared_smart_turn_session()
    analyzer = analyzers[0]
    analyzer.set_sample_rate(16000)
    audio = synthesize("I would like to check my order status", 16000).astype(np.float32) / 32768
    result = analyzer._predict_endpoint(audio)
    assert result["prediction"] in (0, 1) and 0.0 <= result["probability"] <= 1.0
    assert first is not second


async def test_vad_settings_detect_caller_speech_within_150ms():
    """The VAD's share of the 300 ms barge-in budget, on phone-quality (mu-law) formant speech."""
    from pipecat.audio.vad.vad_analyzer import VADState

    from voicebot_core.audio import mulaw_to_pcm16, pcm16_to_mulaw
    from voicebot_worker.settings import WorkerSettings
    from voicebot_worker.turns import build_vad

    settings = WorkerSettings()
    vad = build_vad(settings.worker_vad_start_secs, settings.worker_vad_stop_secs, settings.worker_vad_confidence,
                    settings.worker_vad_min_volume)
    vad.set_sample_rate(8000)
    speech = mulaw_to_pcm16(pcm16_to_mulaw(synthesize("wait, one more question", 8000)))
    audio = np.concatenate([np.zeros(8000, np.int16), speech]).astype("<i2").tobytes()
    detected_at = None
    for offset in range(0, len(audio), 320):
        if await vad.analyze_audio(audio[offset:offset + 320]) == VADState.SPEAKING:
            detected_at = (offset + 320) / 16000 - 1.0
            break
    assert detected_at is not None and 0 < detected_at <= 0.15, detected_at
