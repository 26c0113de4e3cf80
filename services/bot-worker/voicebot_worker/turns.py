"""Caller-turn detection per agent profile: Silero VAD plus a stop strategy.

smart_turn_v3 loads a 30-45 MB ONNX session; pipecat's analyzer makes one per call, which at
10 calls per process both wastes memory and slows every inference. We build the session once per
process (one intra-op thread) and hand it to each call's analyzer. pipecat also gives every call's
analyzer a thread of its own: 20 calls ending turns together would run 20 inferences of ~100 ms CPU
at once, each competing with the event loop that paces the bot's audio. Here every call's inference
queues on ONE process-wide thread running at a lower priority (nice +5), so inference uses the CPU
the event loop leaves and turn ends queue instead of stalling audio. pipecat's strategy already runs
the model only when VAD reports the caller stopped (once per pause).

The VAD is voicebot_worker.vad.BatchedSileroVAD (one session, batched across calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import onnxruntime
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.metrics.metrics import MetricsData
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voicebot_core.profiles import AgentProfile
from voicebot_worker.turn_start import MIN_BARGE_IN_SPEECH_S, BargeInUserTurnStartStrategy
from voicebot_worker.turn_words import WordAwareTurnStopStrategy
from voicebot_worker.vad import BatchedSileroVAD

SMART_TURN_NICE = 5  # the event loop (audio pacing, barge-in) wins when both want the core
# An inference that waited this long for the shared thread is skipped and the pause counts as the end
# of the turn: under a backlog turn detection degrades to a ~0.2 s VAD stop + this wait, instead of
# replies (and the call's whole user aggregator, which awaits the result) falling seconds behind.
SMART_TURN_MAX_QUEUE_S = 0.35
stats = {"inferences": 0, "skipped": 0}


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux: a thread's niceness is its own
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SMART_TURN_NICE)


@lru_cache(maxsize=1)
def smart_turn_executor() -> ThreadPoolExecutor:
    """The one thread every call's Smart Turn inference runs on."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn", initializer=_lower_priority)


@lru_cache(maxsize=1)
def shared_smart_turn_session():
    """The bundled smart-turn v3 model, loaded once per process."""
    probe = LocalSmartTurnAnalyzerV3(cpu_count=1)  # finds the bundled model
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL  # 74 vs 93 ms CPU
    return onnxruntime.InferenceSession(probe._session._model_path, sess_options=options,
                                        providers=["CPUExecutionProvider"])


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """LocalSmartTurnAnalyzerV3 on the process-wide ONNX session instead of its own."""

    def __init__(self, **kwargs) -> None:
        BaseSmartTurn.__init__(self, **kwargs)
        self._log_data = False
        self._session = shared_smart_turn_session()

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        return smart_turn_executor()

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, MetricsData | None]:
        if not self._audio_buffer:
            # The silence fallback (stop_secs) ended the turn and cleared the audio: nothing to infer. The hop
            # to the shared thread would only queue this turn's end behind other calls' inferences.
            return EndOfTurnState.INCOMPLETE, None
        loop = asyncio.get_running_loop()
        state, result = await loop.run_in_executor(self._model_executor, self._segment_unless_stale,
                                                   self._audio_buffer, time.monotonic())
        if state == EndOfTurnState.COMPLETE:
            self._clear(state)
        return state, result

    def _segment_unless_stale(self, audio_buffer: Any, queued_at: float) -> tuple[EndOfTurnState, MetricsData | None]:
        if time.monotonic() - queued_at > SMART_TURN_MAX_QUEUE_S:
            stats["skipped"] += 1
            return EndOfTurnState.COMPLETE, None
        stats["inferences"] += 1
        return self._process_speech_segment(audio_buffer)

    async def cleanup(self) -> None:
        self._executor = None  # the shared thread outlives the call
        await BaseSmartTurn.cleanup(self)


def build_vad(start_secs: float, stop_secs: float, confidence: float, min_volume: float) -> BatchedSileroVAD:
    return BatchedSileroVAD(params=VADParams(start_secs=start_secs, stop_secs=stop_secs,
                                              confidence=confidence, min_volume=min_volume))


def build_turn_strategies(profile: AgentProfile, speech_timeout_s: float, vad: BatchedSileroVAD | None = None,
                          bot_audible: Callable[[], bool] = lambda: False,
                          barge_in_min_speech_s: float = MIN_BARGE_IN_SPEECH_S,
                          on_backchannel: Callable[[], None] = lambda: None) -> UserTurnStrategies:
    """`vad`: the call's VAD, for the backchannel-proof start strategy (turn_start.py); without it,
    pipecat's default VAD + transcription start strategies."""
    if profile.turn_detection == "speech_timeout":
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=speech_timeout_s)
    else:
        stop = WordAwareTurnStopStrategy(turn_analyzer=SharedSmartTurnAnalyzer())
    start = ([BargeInUserTurnStartStrategy(vad, min_speech_s=barge_in_min_speech_s, bot_audible=bot_audible,
                                                on_backchannel=on_backchannel)]
             if vad is not None else None)
    return UserTurnStrategies(start=start, stop=[stop])

