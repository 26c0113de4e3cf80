"""Property-based tests (hypothesis) of the Media Streams parser and the relay's fast media check.

tests/core/test_twilio_protocol.py pins the reasons and the shapes Twilio sends, with seeded random
fuzzing of is_base64 and byte mutations of three seed frames. Here hypothesis builds structured
frames instead (every event, missing or mistyped fields, any JSON value, payloads base64 or not,
any JSON layout) and arbitrary text and bytes, and checks the contracts the gateway relies on:
parse_frame raises FrameError and nothing else, what it accepts is what the relay may forward, and
the fast check is_plain_media never accepts what parse_frame refuses (and takes Twilio's own frames).
"""

from __future__ import annotations

import base64
import binascii

from hypothesis import example, given
from hypothesis import strategies as st

from helpers.frame_strategies import B64_ALPHABET, SID_CHARS, frames, layouts, texts, valid_payloads
from helpers.fuzzing import PURE
from voicebot_core.twilio_protocol import (
    INBOUND_EVENTS,
    MAX_FRAME_CHARS,
    MAX_MEDIA_PAYLOAD_BYTES,
    FrameError,
    decode_media_payload,
    is_base64,
    is_plain_media,
    media_message,
    parse_frame,
)


def _strictly_decodes(payload: str | bytes) -> bool:
    try:
        base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


def _parse_or_error(text, started: bool):
    """parse_frame's frame, or the FrameError; any other exception fails the test."""
    try:
        return parse_frame(text, started=started)
    except FrameError as exc:
        return exc


# parse_frame ------------------------------------------------------------------------------------
@PURE
@given(text=texts, started=st.booleans())
@example(text="[" * 50_000, started=True)  # nesting within the size limit, beyond Python's recursion limit
@example(text='{"event":"media","media":' * 20_000, started=True)
def test_parse_frame_raises_only_frame_error_and_accepts_only_what_the_relay_needs(text, started):
    frame = _parse_or_error(text, started)
    if isinstance(frame, FrameError):
        assert str(frame)  # a reason to log and to send in the close frame
        return
    data = frame.data
    assert isinstance(data, dict) and frame.event == data["event"] in INBOUND_EVENTS
    if frame.event == "media":
        assert started, "media accepted before start"
        assert isinstance(frame.stream_sid, str) and frame.stream_sid
        assert decode_media_payload(frame) == base64.b64decode(data["media"]["payload"])
        assert len(decode_media_payload(frame)) <= MAX_MEDIA_PAYLOAD_BYTES
    elif frame.event == "start":
        assert data["start"]["callSid"] and data["streamSid"]
    elif frame.event in ("mark", "dtmf"):
        assert isinstance(data[frame.event], dict)


@PURE
@given(data=st.binary(max_size=300), started=st.booleans())
@example(data=b"[" * 50_000, started=True)
@example(data='{"event":"media"}'.encode("utf-16"), started=True)  # json.loads detects UTF-16 and 32
def test_parse_frame_of_arbitrary_bytes_raises_only_frame_error(data, started):
    frame = _parse_or_error(data, started)
    assert isinstance(frame, FrameError) or frame.event in INBOUND_EVENTS


@PURE
@given(frame=frames(), layout=layouts, started=st.booleans())
def test_media_frames_are_accepted_exactly_when_started_with_a_base64_payload_and_a_stream_sid(frame, layout, started):
    """For a media frame within the size limits, parse_frame's answer is decided by the three
    things the relay depends on, whatever else the frame holds."""
    frame["event"] = "media"
    text = layout(frame)
    media = frame.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    sid = frame.get("streamSid")
    expected = (started and isinstance(payload, str) and is_base64(payload)
                and len(payload) * 3 // 4 <= MAX_MEDIA_PAYLOAD_BYTES and isinstance(sid, str) and sid != ""
                and len(text) <= MAX_FRAME_CHARS)
    result = _parse_or_error(text, started)
    assert (not isinstance(result, FrameError)) == expected, (result, frame)


@PURE
@given(audio=st.binary(max_size=MAX_MEDIA_PAYLOAD_BYTES), sid=st.text(alphabet=SID_CHARS, min_size=1, max_size=64))
def test_our_own_media_messages_round_trip_and_take_the_fast_path(audio, sid):
    text = media_message(sid, audio)
    assert decode_media_payload(parse_frame(text, started=True)) == audio
    assert is_plain_media(text.encode())


# is_plain_media ---------------------------------------------------------------------------------
twilio_media = st.builds(  # in Twilio's key order (the fast check wants "event" first)
    lambda seq, track, chunk, timestamp, payload, sid: {
        "event": "media", "sequenceNumber": seq,
        "media": {"track": track, "chunk": chunk, "timestamp": timestamp, "payload": payload}, "streamSid": sid},
    st.integers(1, 10**7).map(str), st.sampled_from(["inbound", "outbound"]), st.integers(1, 10**7).map(str),
    st.integers(0, 10**9).map(str), valid_payloads,
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map("MZ".__add__),
)


@PURE
@given(frame=twilio_media, layout=layouts)
def test_fast_check_takes_every_frame_of_twilio_shape(frame, layout):
    data = layout(frame).encode()
    assert is_plain_media(data)
    assert parse_frame(data.decode(), started=True).data == frame


@st.composite
def mutants(draw) -> bytes:
    """A frame near the fast path's shape (Twilio's, or a generated media frame) with a few byte edits."""
    frame = draw(twilio_media | frames().map(lambda f: {**f, "event": "media"}))
    data = bytearray(draw(layouts)(frame).encode())
    pieces = st.sampled_from([b"{", b"}", b"[", b":", b",", b'"', b"\\", b" ", b"\x0b", b"\x00", b"\xc3\xa9",
                              b"=", b"A", b"/", b'"streamSid":"MZ1",', b'"payload":"AAAA",', b'"media":{},'])
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            data[at:at] = draw(pieces)
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 12))]
        elif action == "replace" and at < len(data):
            data[at:at + 1] = draw(pieces)
        elif action == "duplicate" and data:
            cut = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[cut:cut + draw(st.integers(1, 40))]
    return bytes(data)


@PURE
@given(data=st.one_of(mutants(), st.binary(max_size=200), texts.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_fast_check_never_accepts_what_parse_frame_refuses(data):
    """Whenever is_plain_media says yes, parse_frame(started=True) accepts the same bytes as a
    media frame, with a payload that is what the fast check saw (the relay forwards the bytes)."""
    if not is_plain_media(data):
        return
    frame = parse_frame(data.decode("utf-8"), started=True)
    assert frame.event == "media" and frame.stream_sid
    payload = frame.data["media"]["payload"]
    assert is_base64(payload) and b'"payload"' in data and f'"{payload}"'.encode() in data
    assert decode_media_payload(frame) == base64.b64decode(payload, validate=True)


# is_base64 --------------------------------------------------------------------------------------
base64_candidates = st.one_of(
    valid_payloads,
    valid_payloads.flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n])),
    valid_payloads.map(lambda p: p + "="),  # padding after a whole quantum
    st.text(alphabet=B64_ALPHABET + "=", max_size=16),
    st.text(alphabet="AB+/=-_ \n\t\r.\x00é€", max_size=16),
    st.text(max_size=16),
)


@PURE
@given(payload=base64_candidates)
@example(payload="AAAA=")
@example(payload="AA==AA==")
def test_is_base64_agrees_with_strict_decoding_and_the_length_rule(payload):
    expected = _strictly_decodes(payload) and len(payload) % 4 == 0
    assert is_base64(payload) == expected
    encoded = payload.encode("utf-8")
    assert is_base64(encoded) == (_strictly_decodes(encoded) and len(encoded) % 4 == 0) == expected


@PURE
@given(data=st.binary(max_size=40))
def test_is_base64_of_arbitrary_bytes_agrees_with_strict_decoding(data):
    assert is_base64(data) == (_strictly_decodes(data) and len(data) % 4 == 0)
    assert is_base64(base64.b64encode(data)) and is_base64(base64.b64encode(data).decode())
