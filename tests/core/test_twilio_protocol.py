import base64
import binascii
import json
import random

import pytest

from voicebot_core.twilio_protocol import (
    FrameError,
    InboundFrame,
    clear_message,
    decode_media_payload,
    is_base64,
    is_plain_media,
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
        (json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "!!!"}}), True, "not base64"),
        (json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "AAA"}}), True, "not base64"),
        (json.dumps({"event": "media", "media": {"payload": "AAAA"}}), True, "without a streamSid"),
        (json.dumps({"event": "media", "streamSid": "", "media": {"payload": "AAAA"}}), True, "without a streamSid"),
        (json.dumps({"event": "media", "streamSid": 7, "media": {"payload": "AAAA"}}), True, "without a streamSid"),
        (json.dumps({"event": "start", "start": {}}), False, "start frame without"),
        (json.dumps({"event": "mark"}), True, "mark frame without"),
        ("x" * 70_000, True, "exceeds"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(text, started, reason):
    with pytest.raises(FrameError, match=reason):
        parse_frame(text, started=started)


def test_bad_base64_is_a_frame_error():
    with pytest.raises(FrameError, match="not base64"):
        parse_frame(json.dumps({"event": "media", "streamSid": "MZ1", "media": {"payload": "!!!"}}), started=True)
    # decode_media_payload still refuses on its own (a frame built without parse_frame)
    frame = InboundFrame(event="media", data={"event": "media", "media": {"payload": "!!!"}})
    with pytest.raises(FrameError, match="base64"):
        decode_media_payload(frame)


BASE64_CASES = ["", "AAAA", "AA==", "AAA=", "/+9z", base64.b64encode(bytes(range(256)) * 3).decode(),
                "A", "AA", "AAA", "AAAAA", "A===", "====", "AA=A", "A=AA", "=AAA", "AAAA=", "AAAA====",
                "AA AA", "AA\nA", "AA-_", "AA.A", "café", "AAA\u00e9", "AAA\x00"]


def _decodes(payload: str) -> bool:
    try:
        base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


@pytest.mark.parametrize("payload", BASE64_CASES)
def test_payload_check_agrees_with_strict_decoding(payload):
    """is_base64 (what parse_frame and the relay's fast check use, without decoding) says yes
    when the strict decoder decodes the payload, except for padding after a whole quantum
    ("AAAA=", which CPython's strict mode lets through and no encoder writes): it refuses that."""
    expected = _decodes(payload) and len(payload) % 4 == 0 and "===" not in payload
    assert is_base64(payload) == expected == is_base64(payload.encode("utf-8"))


def test_payload_check_agrees_with_strict_decoding_on_random_strings():
    rng = random.Random(5)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" + "=" * 8 + "-_ !é"
    for _ in range(20_000):
        payload = "".join(rng.choice(alphabet) for _ in range(rng.choice((0, 1, 2, 3, 4, 7, 8, 12, 16))))
        if rng.random() < 0.5:  # mostly valid strings, with padding at or near the end
            payload = base64.b64encode(payload.encode())[: rng.randint(0, 40)].decode()
        if is_base64(payload):  # never accepts what the decoder refuses
            assert _decodes(payload), payload
        else:  # refuses only what the decoder refuses, or non-canonical padding after a whole quantum
            assert not _decodes(payload) or len(payload) % 4 or "===" in payload, payload
        assert is_base64(base64.b64encode(payload.encode()).decode())  # takes every encoder's output


def test_outbound_messages_have_twilio_shape():
    assert json.loads(mark_message("MZ1", "u1")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "u1"}}
    assert json.loads(clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    payload = json.loads(media_message("MZ1", b"\xff"))["media"]["payload"]
    assert base64.b64decode(payload) == b"\xff"


# The relay's fast check of media frames: never accepts what parse_frame rejects -----------------
PAYLOAD = base64.b64encode(bytes([0xFF]) * 160).decode()
TWILIO_MEDIA = {"event": "media", "sequenceNumber": "4", "media": {
    "track": "inbound", "chunk": "3", "timestamp": "66", "payload": PAYLOAD}, "streamSid": "MZ" + "b" * 32}
COMPACT = json.dumps(TWILIO_MEDIA, separators=(",", ":")).encode()
SPACED = json.dumps({"event": "media", "sequenceNumber": "4", "streamSid": "MZ1",
                     "media": {"track": "inbound", "payload": PAYLOAD, "chunk": "3"}}, indent=1).encode()


def _full_parser_accepts_media(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")  # what a WebSocket text frame must be
        return parse_frame(text, started=True).event == "media"
    except (FrameError, UnicodeDecodeError):
        return False


@pytest.mark.parametrize("data", [COMPACT, SPACED, media_message("MZ1", bytes(160)).encode(),
                                  media_message("MZ1", bytes(161)).encode(), media_message("MZ1", bytes(1)).encode(),
                                  b' {"event":"media","media":{"payload":""},"streamSid":"MZ1"} \r\n',
                                  b'{"event":"media","streamSid" : "MZ1","media":{"payload":"AA=="}}'])
def test_fast_check_takes_the_frames_twilio_sends(data):
    assert is_plain_media(data) and _full_parser_accepts_media(data)


@pytest.mark.parametrize("data", [
    COMPACT.replace(PAYLOAD.encode(), b"!" * len(PAYLOAD)),  # not the base64 alphabet
    COMPACT.replace(PAYLOAD.encode(), PAYLOAD.encode()[:-1]),  # not a multiple of 4
    COMPACT.replace(PAYLOAD.encode(), b"A=AA" + PAYLOAD.encode()[4:]),  # padding not at the end
    COMPACT.replace(PAYLOAD.encode(), PAYLOAD.encode()[:-4] + b"A==="),
    COMPACT.replace(b',"streamSid":"MZ' + b"b" * 32 + b'"', b""),  # no streamSid
    COMPACT.replace(b'"MZ' + b"b" * 32 + b'"', b'""'),  # an empty one
    SPACED.replace(b'"streamSid": "MZ1",', b""),
    b'{"event":"media","media":{"track":"streamSid","payload":"AAAA"}}',  # the key's name as a value
    b'{"event":"media","media":{"track":"x","payload":"AAAA"},"sequenceNumber":"streamSid"}',
])
def test_fast_check_refuses_a_bad_payload_or_a_missing_stream_sid(data):
    assert data != COMPACT and data != SPACED
    assert not is_plain_media(data) and not _full_parser_accepts_media(data)


@pytest.mark.parametrize("data", [
    b'{"event":"media","event":"teleport","media":{"payload":"AAAA"}}',  # duplicate key: the last wins
    b'{"event":"media","media":{"payload":"AAAA"},"media":1}',
    b'{"event":"media","media":{"payload":"AAAA","payload":1}}',
    b'{"event":"media","media":{"payload":"AA\\"AA"}}',
    b'{"event":"media","media":{"payload":"AA\\u0041"}}',
    b'{"event":"media","media":{"payload":"AA\xc3\xa9"}}',
    b'{"event":"media","media":{"payload":"AAAA"}',
    b'{"event":"media","media":{"payload":"AAAA"}}}',
    b'\x0b{"event":"media","media":{"payload":"AAAA"}}',  # not JSON whitespace
    b'{"event":"media","media":{"payload":"AAAA"}},',
    b'{"event":"media","media":{"payload":"' + b"A" * 21848 + b'"}}',  # over the payload limit
    b'{"event":"media","sequenceNumber":"1",' * 2000 + b'"media":{"payload":"AAAA"}}',  # over the frame limit
    b'{"event":"media","sequenceNumber":4,"media":{"payload":"AAAA"}}',  # numbers: not the plain shape
    b'{"event":"mark","mark":{"name":"x"}}',
    b'{"event":"stop","stop":{}}',
])
def test_fast_check_leaves_anything_else_to_the_parser(data):
    assert not is_plain_media(data)


def test_fast_check_never_accepts_what_the_parser_rejects():
    """Seeded mutation fuzzing around the accepted shapes: every mutant the fast check takes,
    parse_frame takes too. (The converse is not required: parse_frame is the fallback.)"""
    rng = random.Random(17)
    alphabet = b'{}[]:,"\\ \t\n\r\x0b\x00\xc3\xa9AZaz09+/=.-_emdiaventpyloMZ'
    seeds = [COMPACT, SPACED, b'{"event":"media","media":{"payload":"AAAA"},"streamSid":"MZ1"}']
    accepted = 0
    for i in range(20_000):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.random()
            if op < 0.4:
                data[at:at] = bytes([rng.choice(alphabet)])
            elif op < 0.7 and at < len(data):
                del data[at:at + rng.randint(1, 12)]
            elif at < len(data):
                data[at] = rng.choice(alphabet)
            else:  # duplicate a slice: repeated keys and members
                cut = rng.randrange(len(data))
                data[at:at] = data[cut:cut + rng.randint(1, 40)]
        mutant = bytes(data)
        if is_plain_media(mutant):
            accepted += 1
            assert _full_parser_accepts_media(mutant), mutant
    assert accepted > 500  # the fuzzing does reach the fast path's edges
