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


_BASE64_DATA = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BASE64_CHARS = _BASE64_DATA + b"="


def is_base64(payload: str | bytes) -> bool:
    """True when `payload` is what `base64.b64decode(payload, validate=True)` takes: the base64
    alphabet only, a length that is a multiple of 4, `=` only as the last one or two characters.
    Told without decoding (a translate and a search for the padding)."""
    if isinstance(payload, str):
        if not payload.isascii():
            return False
        payload = payload.encode("ascii")
    return _base64_shape(payload, 0, len(payload))


def _base64_shape(data: bytes, start: int, end: int) -> bool:
    """is_base64 for data[start:end]: length, alphabet and padding."""
    if (end - start) % 4 or data[start:end].translate(None, _BASE64_CHARS):
        return False
    pad = data.find(b"=", start, end)
    return pad < 0 or pad == end - 1 or (pad == end - 2 and data[end - 1] == 0x3D)


def parse_frame(text: str | bytes, *, started: bool, max_chars: int = MAX_FRAME_CHARS) -> InboundFrame:
    """Validate one message from Twilio. `started` says whether `start` was already seen."""
    if len(text) > max_chars:
        raise FrameError(f"frame of {len(text)} bytes exceeds the {max_chars}-byte limit")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[" * 50_000
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
        if not is_base64(media["payload"]):
            raise FrameError("media payload is not base64")
        if not isinstance(data.get("streamSid"), str) or not data["streamSid"]:
            raise FrameError("media frame without a streamSid")
    elif event == "start":
        start = data.get("start")
        if not isinstance(start, dict) or not start.get("callSid") or not data.get("streamSid"):
            raise FrameError("start frame without start.callSid or streamSid")
    elif event in ("dtmf", "mark") and not isinstance(data.get(event), dict):
        raise FrameError(f"{event} frame without its {event} object")
    return InboundFrame(event=event, data=data)


# The relay's hot path checks a `media` frame without decoding the JSON document: one regular
# expression over the raw bytes up to the payload's opening quote, a byte translation over the
# payload but its last two characters (base64 characters only, no padding) and one from those two
# (padding only in the right places) to the end. What passes is a
# strict subset of what `parse_frame(..., started=True)` accepts: plain JSON (strings without
# escapes, only JSON's own whitespace), `event` first and equal to "media", exactly one `media`
# object holding exactly one string `payload` within the size limit and of base64's shape (alphabet,
# length, padding: checked, not decoded), a non-empty `streamSid`, and only the other keys Twilio
# sends (their duplicates do not change what parse_frame decides). Anything else goes to
# parse_frame, which has the final say (tests/core/test_twilio_protocol.py checks the subset).
def _media_frame_parts(ws: bytes) -> tuple[Any, Any]:
    """(match up to the payload's opening quote, fullmatch from the payload's last two characters
    (from its closing quote when it is empty)), with `ws` allowed between tokens."""
    plain = rb'"[A-Za-z0-9_.:+\-]{0,64}"'
    # the only group, "sid": a non-empty streamSid was among the top-level members matched
    top_member = (rb'(?:"sequenceNumber"' + ws + rb":" + ws + plain
                  + rb'|(?P<sid>"streamSid"' + ws + rb":" + ws + rb'"[A-Za-z0-9_.:+\-]{1,64}"))')
    media_member = rb'"(?:track|chunk|timestamp)"' + ws + rb":" + ws + plain
    before = re.compile(
        ws + rb"\{" + ws + rb'"event"' + ws + rb":" + ws + rb'"media"'
        + rb"(?:" + ws + rb"," + ws + top_member + rb")*"
        + ws + rb"," + ws + rb'"media"' + ws + rb":" + ws + rb"\{" + ws
        + rb"(?:" + media_member + ws + rb"," + ws + rb")*"
        + rb'"payload"' + ws + rb":" + ws + rb'"'
    )
    after = re.compile(
        rb'(?:[A-Za-z0-9+/][A-Za-z0-9+/=]|==)?"(?:' + ws + rb"," + ws + media_member + rb")*" + ws + rb"\}"
        + rb"(?:" + ws + rb"," + ws + top_member + rb")*" + ws + rb"\}" + ws
    )
    return before.match, after.fullmatch


# Twilio's own compact form first (twice as fast to match), then any JSON whitespace.
_COMPACT_BEFORE, _COMPACT_AFTER = _media_frame_parts(b"")
_SPACED_BEFORE, _SPACED_AFTER = _media_frame_parts(rb"[ \t\n\r]*")


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
    size = end - start
    if (end < 0 or size % 4 or size * 3 // 4 > MAX_MEDIA_PAYLOAD_BYTES
            or data[start:end - 2].translate(None, _BASE64_DATA)):
        return False
    tail = after(data, end - 2 if size else end)
    return tail is not None and (tail.lastindex is not None or head.lastindex is not None)


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
