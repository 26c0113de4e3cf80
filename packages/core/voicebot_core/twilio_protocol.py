"""Twilio Media Streams messages: parsing with clear errors, and builders for what we send.

Parsing is strict about what we rely on (event names, a `start` before `media`, sizes) and
tolerant of extra fields, which Twilio may add at any time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
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


# The relay's hot path checks a `media` frame without decoding the JSON document: one regular
# expression over the raw bytes up to the payload's opening quote, a byte translation over the
# payload (base64 characters only) and one from its closing quote to the end. What passes is a
# strict subset of what `parse_frame(..., started=True)` accepts: plain JSON (strings without
# escapes, only JSON's own whitespace), `event` first and equal to "media", exactly one `media`
# object holding exactly one string `payload` within the size limit, and only the other keys
# Twilio sends (their duplicates do not change what parse_frame decides). Anything else goes to
# parse_frame, which has the final say (tests/core/test_twilio_protocol.py checks the subset).
def _media_frame_parts(ws: bytes) -> tuple[Any, Any]:
    """(match up to the payload's opening quote, fullmatch from its closing quote), with `ws`
    allowed between tokens."""
    plain = rb'"[A-Za-z0-9_.:+\-]{0,64}"'
    top_member = rb'"(?:sequenceNumber|streamSid)"' + ws + rb":" + ws + plain
    media_member = rb'"(?:track|chunk|timestamp)"' + ws + rb":" + ws + plain
    before = re.compile(
        ws + rb"\{" + ws + rb'"event"' + ws + rb":" + ws + rb'"media"'
        + rb"(?:" + ws + rb"," + ws + top_member + rb")*"
        + ws + rb"," + ws + rb'"media"' + ws + rb":" + ws + rb"\{" + ws
        + rb"(?:" + media_member + ws + rb"," + ws + rb")*"
        + rb'"payload"' + ws + rb":" + ws + rb'"'
    )
    after = re.compile(
        rb'"(?:' + ws + rb"," + ws + media_member + rb")*" + ws + rb"\}"
        + rb"(?:" + ws + rb"," + ws + top_member + rb")*" + ws + rb"\}" + ws
    )
    return before.match, after.fullmatch


# Twilio's own compact form first (twice as fast to match), then any JSON whitespace.
_COMPACT_BEFORE, _COMPACT_AFTER = _media_frame_parts(b"")
_SPACED_BEFORE, _SPACED_AFTER = _media_frame_parts(rb"[ \t\n\r]*")
_BASE64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def is_plain_media(data: bytes) -> bool:
    """True when `data` (a text frame's bytes) is a media frame that `parse_frame(data,
    started=True)` accepts, told without parsing it. False says nothing: ask parse_frame."""
    if len(data) > MAX_FRAME_CHARS:
        return False
    after = _COMPACT_AFTER
    head = _COMPACT_BEFORE(data)
    if head is None:
        after = _SPACED_AFTER
        head = _SPACED_BEFORE(data)
        if head is None:
            return False
    start = head.end()
    end = data.find(b'"', start)
    if end < 0 or (end - start) * 3 // 4 > MAX_MEDIA_PAYLOAD_BYTES or data[start:end].translate(None, _BASE64_CHARS):
        return False
    return after(data, end) is not None


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
