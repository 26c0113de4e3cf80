"""Caller-turn detection per agent profile: Silero VAD plus a stop strategy.

smart_turn_v3 loads a 30-45 MB ONNX session; pipecat's analyzer makes one per call, which at
10 calls per process both wastes memory and slows every inference. We build the session once per
process and hand it to each call's analyzer (ONNX Runtime sessions are safe to run concurrently).
"""

from __future__ import annotations

from functools import lru_cache

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy, TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voicebot_core.profiles import AgentProfile


@lru_cache(maxsize=1)
def shared_smart_turn_session():
    """The bundled smart-turn v3 model, loaded once per process."""
    probe = LocalSmartTurnAnalyzerV3()  # loads the bundled model with pipecat's session options
    return probe._session


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """LocalSmartTurnAnalyzerV3 on the process-wide ONNX session instead of its own."""

    def __init__(self, **kwargs) -> None:
        BaseSmartTurn.__init__(self, **kwargs)
        self._log_data = False
        self._session = shared_smart_turn_session()


def build_vad(start_secs: float, stop_secs: float, confidence: float, min_volume: float) -> SileroVADAnalyzer:
    return SileroVADAnalyzer(params=VADParams(start_secs=start_secs, stop_secs=stop_secs,
                                              confidence=confidence, min_volume=min_volume))


def build_turn_strategies(profile: AgentProfile, speech_timeout_s: float) -> UserTurnStrategies:
    if profile.turn_detection == "speech_timeout":
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=speech_timeout_s)
    else:
        stop = TurnAnalyzerUserTurnStopStrategy(turn_analyzer=SharedSmartTurnAnalyzer())
    return UserTurnStrategies(stop=[stop])  # start: pipecat's default VAD + transcription strategies
