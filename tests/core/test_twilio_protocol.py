import base64
import json

import pytest

from voicebot_core.twilio_protocol import (
    FrameError,
    clear_message,
    decode_media_payload,
    mark_message,
    media_message,
    parse_frame,
    parse_start,
)

START = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
    "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
    "customParameters": {"direction": "outbound", "dial_job_id": "j1"},
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}


def test_start_is_parsed_with_custom_parameters():
    start = parse_start(parse_frame(json.dumps(START), started=False))
    assert (start.call_sid, start.stream_sid, start.sample_rate) == ("CA1", "MZ1", 8000)
    assert start.custom_parameters == {"direction": "outbound", "dial_job_id": "j1"}


def test_media_round_trip():
    audio = bytes(range(160))
    frame = parse_frame(media_message("MZ1", audio), started=True)
    assert decode_media_payload(frame) == audio


@pytest.mark.parametrize(
    ("text", "started", "reason"),
    [
        ("{oops", True, "not valid JSON"),
        ("[1, 2]", True, "not a JSON object"),
        (json.dumps({"event": "party"}), True, "unknown event"),
        (json.dumps({"event": "media", "media": {"payload": "AAAA"}}), False, "media before start"),
        (json.dumps({"event": "media", "media": {}}), True, "without a payload"),
        (json.dumps({"event": "media", "media": {"payload": "A" * 30_000}}), True, "size limit"),
        (json.dumps({"event": "start", "start": {}}), False, "start frame without"),
        (json.dumps({"event": "mark"}), True, "mark frame without"),
        ("x" * 70_000, True, "exceeds"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(text, started, reason):
    with pytest.raises(FrameError, match=reason):
        parse_frame(text, started=started)


def test_bad_base64_is_a_frame_error():
    frame = parse_frame(json.dumps({"event": "media", "media": {"payload": "!!!"}}), started=True)
    with pytest.raises(FrameError, match="base64"):
        decode_media_payload(frame)


def test_outbound_messages_have_twilio_shape():
    assert json.loads(mark_message("MZ1", "u1")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "u1"}}
    assert json.loads(clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    payload = json.loads(media_message("MZ1", b"\xff"))["media"]["payload"]
    assert base64.b64decode(payload) == b"\xff"
