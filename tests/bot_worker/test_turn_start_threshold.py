"""BargeInUserTurnStartStrategy's threshold on its own: over the bot, a turn starts once the VAD has
scored `min_speech_s` of voice; at 0 it starts at VAD's start, as pipecat's default strategy does."""

from __future__ import annotations

from pipecat.frames.frames import InputAudioRawFrame, VADUserStartedSpeakingFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager

from voicebot_worker.turn_start import BargeInUserTurnStartStrategy


class ScoredVoice:
    voiced_s = 0.0  # what the call's VAD has scored as voice in the burst so far


async def _strategy(min_speech_s: float) -> tuple[BargeInUserTurnStartStrategy, ScoredVoice, list[bool]]:
    vad = ScoredVoice()
    strategy = BargeInUserTurnStartStrategy(vad, min_speech_s=min_speech_s, bot_audible=lambda: True)
    await strategy.setup(FrameProcessorSetup(clock=None, task_manager=TaskManager(), pipeline_worker=None))
    started: list[bool] = []

    @strategy.event_handler("on_user_turn_started")
    async def on_started(_strategy, _params) -> None:
        started.append(True)

    return strategy, vad, started


async def test_over_the_bot_a_turn_starts_once_enough_voice_is_scored():
    strategy, vad, started = await _strategy(0.3)
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    vad.voiced_s = 0.2
    await strategy.process_frame(InputAudioRawFrame(b"\x00" * 320, 8000, 1))
    assert started == []
    vad.voiced_s = 0.32
    await strategy.process_frame(InputAudioRawFrame(b"\x00" * 320, 8000, 1))
    assert started == [True]


async def test_a_zero_threshold_starts_the_turn_at_vad_start():
    strategy, _, started = await _strategy(0.0)
    await strategy.process_frame(VADUserStartedSpeakingFrame())
    assert started == [True]
