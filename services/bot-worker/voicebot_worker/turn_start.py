"""When the caller's speech starts a turn (and so interrupts the bot with a `clear`).

pipecat's default start strategies (VADUserTurnStartStrategy + TranscriptionUserTurnStartStrategy) start
a turn on every VAD start, i.e. after 0.08 s of voice (VOICEBOT_WORKER_VAD_START_SECS): a cough, an
"uh-huh" or line noise cut the bot off. MinWordsUserTurnStartStrategy waits for a transcript, which our
segmented STT gives only after the caller stopped: a late `clear`. This strategy replaces both:

- bot silent: a turn starts on VAD start, or on a transcript the VAD missed (as pipecat's defaults),
  so a short "yes" answering a question is a turn;
- bot audible: a turn starts once the VAD has scored `min_speech_s` of voice in the burst
  (VOICEBOT_WORKER_BARGE_IN_MIN_SPEECH_S, default MIN_BARGE_IN_SPEECH_S), at
  that frame (the `clear` goes out then, not at the end of the speech). A burst that stops short is a
  backchannel: no turn, the bot keeps talking, and its transcript is dropped from the user aggregation.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import BaseUserTurnStartStrategy

from voicebot_worker.vad import BatchedSileroVAD

# "uh-huh", "okay", "mm-hm" and coughs are 0.2-0.3 s of voice; "wait, ..." runs on past this.
MIN_BARGE_IN_SPEECH_S = 0.3


class BargeInUserTurnStartStrategy(BaseUserTurnStartStrategy):
    def __init__(self, vad: BatchedSileroVAD, *, min_speech_s: float = MIN_BARGE_IN_SPEECH_S,
                 bot_audible: Callable[[], bool] = lambda: False,
                 on_backchannel: Callable[[], None] = lambda: None, **kwargs) -> None:
        """`bot_audible`: whether bot audio already sent is still playing at the caller (the output
        transport reports the bot stopped when it has *sent* the last audio), or paused for this speech;
        `on_backchannel`: the speech over the bot stopped short of a turn (the paused bot may go on)."""
        super().__init__(**kwargs)
        self._vad = vad
        self._min_speech_s = min_speech_s
        self._bot_audible = bot_audible
        self._on_backchannel = on_backchannel
        self._bot_speaking = False
        self._burst = False  # caller speech while the bot talks, not (yet) a turn
        self._burst_voiced_s = 0.0
        self._backchannel = False  # a burst ended short: its transcript is not a turn

    async def handle_user_turn_started(self) -> None:
        await super().handle_user_turn_started()
        self._burst = self._backchannel = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            if not (self._bot_speaking or self._bot_audible()):
                return await self._start()
            self._burst, self._backchannel, self._burst_voiced_s = True, False, 0.0
            return await self._start_if_long_enough()
        elif isinstance(frame, InputAudioRawFrame) and self._burst:
            return await self._start_if_long_enough()
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._burst:
            logger.debug(f"{self}: {self._burst_voiced_s:.2f} s of caller speech over the bot: a backchannel")
            self._burst, self._backchannel = False, True
            self._on_backchannel()
        elif isinstance(frame, TranscriptionFrame):
            if self._backchannel:
                self._backchannel = False
                await self.trigger_reset_aggregation()
            elif not self._burst:
                return await self._start()
        return ProcessFrameResult.CONTINUE

    async def _start_if_long_enough(self) -> ProcessFrameResult:
        self._burst_voiced_s = max(self._burst_voiced_s, self._vad.voiced_s)
        if self._vad.voiced_s >= self._min_speech_s:
            return await self._start()
        return ProcessFrameResult.CONTINUE

    async def _start(self) -> ProcessFrameResult:
        self._burst = self._backchannel = False
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP
