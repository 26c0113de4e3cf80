"""Not one frame of an interrupted reply after the `clear`.

pipecat drops an interrupted reply's frames from each processor's *process* queue when the
InterruptionFrame gets there, but a processor's *input* queue is a priority queue in which the
InterruptionFrame (a SystemFrame) overtakes the data frames queued before it. The fake TTS (like
any HTTP TTS) pushes a whole sentence of audio at once; when the interruption arrived during such
a burst, the sentence's frames still in the input queues of the speech monitor and of the output
transport were processed *after* the interruption: after the `clear`, and played to the caller
(once 1.95 s of audio). The output transport's audio task also writes the chunk it took off its
queue before the interruption, after the `clear` (up to 40 ms).

Frame ids come from one process-wide counter, so a frame created before a processor saw the
interruption has a smaller id than the fence set then: such a frame arriving later is one the
interruption should have dropped, and is dropped here (unless pipecat marked it uninterruptible).
"""

from __future__ import annotations

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import FastAPIWebsocketOutputTransport
from pipecat.utils.utils import obj_id

# What an interrupted reply sends towards the caller: its audio, its marks and its spoken text
# (which the assistant aggregator behind the output would otherwise add to the LLM context).
REPLY_FRAMES = (OutputAudioRawFrame, OutputTransportMessageFrame, TTSTextFrame)


class InterruptionFence:
    """Tells the frames created before the last interruption a processor saw."""

    def __init__(self) -> None:
        self._fence = 0

    def interrupt(self) -> None:
        self._fence = obj_id()

    def is_stale(self, frame: Frame) -> bool:
        return frame.id < self._fence and frame.interruptible and isinstance(frame, REPLY_FRAMES)


class FencedOutputTransport(FastAPIWebsocketOutputTransport):
    """The websocket output transport, dropping what the interruption it handled should have dropped."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fence = InterruptionFence()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self._fence.interrupt()  # before the base class resets its queues and sends the `clear`
        elif direction == FrameDirection.DOWNSTREAM and self._fence.is_stale(frame):
            return
        await super().process_frame(frame, direction)

    # The audio task may hold a chunk or a mark it took off its queue before the interruption reset it.
    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._fence.is_stale(frame):
            return False
        return await super().write_audio_frame(frame)

    async def send_message(self, frame: OutputTransportMessageFrame | OutputTransportMessageUrgentFrame) -> None:
        if not self._fence.is_stale(frame):
            await super().send_message(frame)

