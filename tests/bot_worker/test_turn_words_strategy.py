"""WordAwareTurnStopStrategy on pipecat's frames: a turn analyzer that always says "complete", and the
words deciding whether the turn ends at once, after the hold, or not at all because the caller went on."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.frames.frames import TranscriptionFrame, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager
from pipecat.utils.time import time_now_iso8601

from voicebot_worker.turn_words import WordAwareTurnStopStrategy

HOLD_S = 0.3


class AlwaysComplete:
    """A turn analyzer whose verdict at every pause is "the turn is complete" (as Smart Turn's was on 8 of
    12 mid-sentence pauses)."""

    params = None

    def set_sample_rate(self, rate: int) -> None: ...
    def update_vad_start_secs(self, secs: float) -> None: ...
    def append_audio(self, audio: bytes, speaking: bool) -> EndOfTurnState:
        return EndOfTurnState.INCOMPLETE
    async def analyze_end_of_turn(self):
        return EndOfTurnState.COMPLETE, None
    def clear(self) -> None: ...
    async def cleanup(self) -> None: ...


@pytest.fixture
async def strategy():
    strategy = WordAwareTurnStopStrategy(turn_analyzer=AlwaysComplete(), hold_s=HOLD_S)
    await strategy.setup(FrameProcessorSetup(clock=None, task_manager=TaskManager(), pipeline_worker=None,
                                             audio_in_sample_rate=8000))
    stops: list[float] = []

    @strategy.event_handler("on_user_turn_stopped")
    async def stopped(_strategy, _params) -> None:
        stops.append(asyncio.get_running_loop().time())

    strategy.stops = stops
    yield strategy
    await strategy.cleanup()


async def _pause_after(strategy, text: str) -> float:
    """The caller says `text` and stops: VAD's stop, then the segment's final transcript."""
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    await strategy.process_frame(VADUserStoppedSpeakingFrame(stop_secs=0.2))
    await strategy.process_frame(TranscriptionFrame(text, "caller", time_now_iso8601(), finalized=True))
    return asyncio.get_running_loop().time()


async def test_a_finished_sentence_ends_the_turn_at_once(strategy):
    paused_at = await _pause_after(strategy, "I would like to check my order.")
    await asyncio.sleep(0.05)
    assert len(strategy.stops) == 1 and strategy.stops[0] - paused_at < 0.05
    assert strategy.holds == 0


async def test_an_unfinished_sentence_ends_the_turn_only_after_the_hold(strategy):
    paused_at = await _pause_after(strategy, "I would like to")
    await asyncio.sleep(HOLD_S / 2)
    assert strategy.stops == []
    await asyncio.sleep(HOLD_S)
    assert len(strategy.stops) == 1 and strategy.stops[0] - paused_at >= HOLD_S * 0.9
    assert strategy.holds == 1


async def test_a_caller_who_goes_on_in_the_pause_keeps_the_turn_open(strategy):
    await _pause_after(strategy, "I would like to")
    await asyncio.sleep(HOLD_S / 2)
    paused_at = await _pause_after(strategy, "check the status of my order")  # speaks again, then finishes
    await asyncio.sleep(HOLD_S * 1.5)
    assert len(strategy.stops) == 1 and strategy.stops[0] - paused_at < 0.05  # one turn: the whole sentence
