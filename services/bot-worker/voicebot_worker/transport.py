"""The call's websocket transport: pipecat's, with the caller audio front-end as its input's audio path
(caller_audio.py), the interruption fence (interruption.py) and the barge-in pause (barge_in_pause.py)
on its output, and the bot's audio handed to the recorder by the output instead of pushed down the
pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from fastapi import WebSocket
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

from voicebot_worker.barge_in_pause import OutputPause, PlayoutLog
from voicebot_worker.caller_audio import CallerAudio, CallerAudioInputTransport
from voicebot_worker.interruption import FencedOutputTransport


class CallOutputTransport(FencedOutputTransport):
    """Once sent, each chunk of bot audio goes to the recorder directly. Pushed down the pipeline, every
    40 ms chunk cost the recorder and the assistant aggregator behind it a queue put and a task wake-up
    each, for a frame only the recorder reads."""

    def __init__(self, *args, recorder: AudioBufferProcessor | None, stream_sid: str,
                 on_paused: Callable[[list[str]], None], lead_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._recorder = recorder
        self._lead_s = lead_s
        self._stream_sid = stream_sid
        self.playout = PlayoutLog()
        self.pause = OutputPause(self.playout, self._send_pause_clear, self._write_frame, on_paused)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self.pause.interrupted()  # a write waiting on the pause wakes to the fence: stale, dropped
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        await self.pause.wait()
        return await super().write_audio_frame(frame)

    async def send_message(self, frame: OutputTransportMessageFrame | OutputTransportMessageUrgentFrame) -> None:
        if not isinstance(frame, OutputTransportMessageUrgentFrame):  # a mark waits behind its audio
            await self.pause.wait()
        await super().send_message(frame)

    async def _write_audio_sleep(self) -> None:
        """pipecat writes each chunk when the one before should have played: on an event loop that runs many
        calls, a chunk late by a few ms is a gap at the phone. Here the phone holds `lead_s` of audio."""
        wait_s = self.playout.ahead_of(self._lead_s)
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def _write_frame(self, frame: Frame) -> bool:
        written = await super()._write_frame(frame)
        if written:
            if isinstance(frame, InterruptionFrame):  # the `clear`
                self.playout.clear()
            else:
                self.playout.sent(frame)
        return written

    async def _send_pause_clear(self) -> None:
        """Not through the serializer: this `clear` is no interruption (the call session's mark
        tracker hears of the pause through `on_paused`)."""
        if not self._client.is_closing and self._client.is_connected:
            await self._client.send(json.dumps({"event": "clear", "streamSid": self._stream_sid}))

    async def cleanup(self) -> None:
        self.pause.close()
        await super().cleanup()

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, OutputAudioRawFrame):
            recorder = self._recorder
            if recorder is not None and recorder._recording:  # pipecat's private state, pinned 1.14
                await recorder._process_recording(frame)
            return
        await super().push_frame(frame, direction)


class CallTransport(FastAPIWebsocketTransport):
    def __init__(self, websocket: WebSocket, params: FastAPIWebsocketParams, caller_audio: CallerAudio,
                 recorder: AudioBufferProcessor | None, stream_sid: str,
                 on_paused: Callable[[list[str]], None], audio_lead_s: float) -> None:
        super().__init__(websocket, params)
        # pipecat's private attributes, pinned 1.14: the input and output the base class built are never started
        self._input = CallerAudioInputTransport(self, self._client, self._params, name=self._input_name,
                                                caller_audio=caller_audio)
        self._output = CallOutputTransport(self, self._client, self._params, name=self._output_name,
                                           recorder=recorder, stream_sid=stream_sid, on_paused=on_paused,
                                           lead_s=audio_lead_s)
        caller_audio.on_voice_start = self._output.pause.pause
