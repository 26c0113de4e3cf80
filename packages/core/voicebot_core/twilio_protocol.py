"""Twilio Media Streams messages: parsing with clear errors, and builders for what we send.

Parsing is strict about what we rely on (event names, a `start` before `media`, sizes) and
tolerant of extra fields, which Twilio may add at any time.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

INBOUND_EVENTS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})
OUTBOUND_EVENTS = frozenset({"media", "mark", "clear"})

# A 20 ms mu-law frame is 160 bytes (216 base64 chars). Twilio sends at most a few hundred ms
# at once; anything far beyond that is a broken or hostile peer.
MAX_FRAME_CHARS = 64 * 1024
MAX_MEDIA_PAYLOAD_BYTES = 16 * 1024


class FrameError(ValueError):
    """A Media Streams message we cannot accept; the message says why."""


@dataclass(frozen=True)
class StreamStart:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: list[str]
    custom_parameters: dict[str, str]
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass
class InboundFrame:
    event: str
    data: dict[str, Any] = field(repr=False)

    @property
    def stream_sid(self) -> str | None:
        return self.data.get("streamSid")


def parse_frame(text: str | bytes, *, started: bool, max_chars: int = MAX_FRAME_CHARS) -> InboundFrame:
    """Validate one message from Twilio. `started` says whether `start` was already seen."""
    if len(text) > max_chars:
        raise FrameError(f"frame of {len(text)} bytes exceeds the {max_chars}-byte limit")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError("frame is not a JSON object")
    event = data.get("event")
    if event not in INBOUND_EVENTS:
        raise FrameError(f"unknown event {event!r}")
    if event == "media":
        if not started:
            raise FrameError("media before start")
        media = data.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
            raise FrameError("media frame without a payload")
        if len(media["payload"]) * 3 // 4 > MAX_MEDIA_PAYLOAD_BYTES:
            raise FrameError("media payload exceeds the size limit")
    elif event == "start":
        start = data.get("start")
        if not isinstance(start, dict) or not start.get("callSid") or not data.get("streamSid"):
            raise FrameError("start frame without start.callSid or streamSid")
    elif event in ("dtmf", "mark") and not isinstance(data.get(event), dict):
        raise FrameError(f"{event} frame without its {event} object")
    return InboundFrame(event=event, data=data)


def parse_start(frame: InboundFrame) -> StreamStart:
    start = frame.data["start"]
    fmt = start.get("mediaFormat") or {}
    params = start.get("customParameters") or {}
    return StreamStart(
        stream_sid=frame.data["streamSid"],
        call_sid=start["callSid"],
        account_sid=start.get("accountSid", ""),
        tracks=list(start.get("tracks") or ["inbound"]),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        encoding=fmt.get("encoding", "audio/x-mulaw"),
        sample_rate=int(fmt.get("sampleRate", 8000)),
        channels=int(fmt.get("channels", 1)),
    )


def decode_media_payload(frame: InboundFrame) -> bytes:
    try:
        return base64.b64decode(frame.data["media"]["payload"], validate=True)
    except (binascii.Error, KeyError) as exc:
        raise FrameError(f"media payload is not base64: {exc}") from None


# builders (our side -> Twilio; the emulator uses the inbound ones)
def media_message(stream_sid: str, mulaw: bytes) -> str:
    return json.dumps(
        {"event": "media", "streamSid": stream_sid, "media": {"payload": base64.b64encode(mulaw).decode()}}
    )


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
