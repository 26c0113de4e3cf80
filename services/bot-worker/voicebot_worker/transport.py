"""The call's websocket transport: pipecat's, with the caller audio front-end as its input's audio path
(caller_audio.py), the interruption fence on its output (interruption.py), and the bot's audio handed
to the recorder by the output instead of pushed down the pipeline."""

from __future__ import annotations

from fastapi import WebSocket
from pipecat.frames.frames import Frame, OutputAudioRawFrame
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

from voicebot_worker.caller_audio import CallerAudio, CallerAudioInputTransport
from voicebot_worker.interruption import FencedOutputTransport


class CallOutputTransport(FencedOutputTransport):
    """Once sent, each chunk of bot audio goes to the recorder directly. Pushed down the pipeline, every
    40 ms chunk cost the recorder and the assistant aggregator behind it a queue put and a task wake-up
    each, for a frame only the recorder reads."""

    def __init__(self, *args, recorder: AudioBufferProcessor | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._recorder = recorder

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, OutputAudioRawFrame):
            recorder = self._recorder
            if recorder is not None and recorder._recording:  # pipecat's private state, pinned 1.14
                await recorder._process_recording(frame)
            return
        await super().push_frame(frame, direction)


class CallTransport(FastAPIWebsocketTransport):
    def __init__(self, websocket: WebSocket, params: FastAPIWebsocketParams, caller_audio: CallerAudio,
                 recorder: AudioBufferProcessor | None) -> None:
        super().__init__(websocket, params)
        # pipecat's private attributes, pinned 1.14: the input and output the base class built are never started
        self._input = CallerAudioInputTransport(self, self._client, self._params, name=self._input_name,
                                                caller_audio=caller_audio)
        self._output = CallOutputTransport(self, self._client, self._params, name=self._output_name,
                                           recorder=recorder)
