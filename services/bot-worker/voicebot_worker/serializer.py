"""Twilio serializer that also surfaces what the stock one ignores: `mark` echoes and `stop`.

Every inbound message is validated with the shared protocol parser first; a malformed one is
reported (the call's stream is then closed) instead of being silently skipped.
"""

from __future__ import annotations

import audioop  # Python 3.13+: from audioop-lts, as in pipecat
import base64
from dataclasses import dataclass

from pipecat.frames.frames import (
    AudioRawFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    SystemFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer

from voicebot_core.twilio_protocol import FrameError, parse_frame
from voicebot_worker.events import CallEvents

TWILIO_RATE = 8000


@dataclass
class TwilioMarkFrame(SystemFrame):
    """Twilio echoed one of our marks: the audio before it played (or a `clear` dropped it)."""

    mark_name: str = ""


@dataclass
class TwilioStopFrame(SystemFrame):
    """Twilio ended the media stream (the call hung up or was redirected)."""


class VoicebotTwilioSerializer(TwilioFrameSerializer):
    def __init__(self, *args, events: CallEvents, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._events = events
        self._failed = False

    def disable_hang_up(self) -> None:
        """The call is already over (Twilio said `stop`): do not POST a hang-up for it."""
        self._hangup_attempted = True

    async def serialize(self, frame: Frame) -> str | bytes | None:
        payload = await super().serialize(frame)
        if payload is None:
            return None
        if isinstance(frame, AudioRawFrame) and frame.sample_rate:
            self._events.on_media_sent(len(frame.audio) / (2 * frame.num_channels * frame.sample_rate))
        elif isinstance(frame, InterruptionFrame):
            self._events.on_clear_sent()
        elif isinstance(frame, OutputTransportMessageFrame) and frame.message.get("event") == "mark":
            self._events.on_mark_sent(str(frame.message.get("mark", {}).get("name", "")))
        return payload

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if self._failed:
            return None
        try:
            message = parse_frame(data, started=True)
        except FrameError as exc:
            self._failed = True
            self._events.on_protocol_error(str(exc))
            return None
        if message.event == "media" and self._sample_rate == TWILIO_RATE:
            # The message is parsed already: decode its audio here instead of letting the stock
            # serializer parse the JSON a second time and run an 8 kHz -> 8 kHz resampler (per frame).
            pcm = audioop.ulaw2lin(base64.b64decode(message.data["media"]["payload"]), 2)
            return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=TWILIO_RATE) if pcm else None
        if message.event in ("media", "dtmf"):
            return await super().deserialize(data)
        if message.event == "mark":
            return TwilioMarkFrame(mark_name=str(message.data["mark"].get("name", "")))
        if message.event == "stop":
            return TwilioStopFrame()
        return None  # a repeated connected/start carries nothing new


def mark_frame(stream_sid: str, name: str) -> OutputTransportMessageFrame:
    """A `mark` queued behind the audio before it, so Twilio echoes it when that audio played."""
    return OutputTransportMessageFrame(message={"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})

