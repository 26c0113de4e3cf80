"""The byte-level relay's WebSocket pieces (pure functions)."""

import struct

import pytest

from voicebot_gateway.ws_frames import (
    OP_CLOSE,
    OP_TEXT,
    accept_key,
    apply_mask,
    client_frame,
    close_code,
    close_payload,
    frame_header,
    http_error,
    parse_head,
    server_frame,
    upgrade_request,
    upgrade_response,
)


@pytest.mark.parametrize(("length", "expected"), [
    (0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"), (65535, b"\x81\x7e\xff\xff"),
    (65536, b"\x81\x7f" + struct.pack("!Q", 65536)),
])
def test_frame_header_lengths(length, expected):
    assert frame_header(OP_TEXT, length, masked=False) == expected
    assert frame_header(OP_TEXT, length, masked=True)[1] == expected[1] | 0x80


def test_server_frame_is_unmasked_and_client_frame_masked():
    assert server_frame(OP_TEXT, b"hello") == b"\x81\x05hello"
    frame = client_frame(OP_TEXT, b"hello")
    assert frame[:2] == b"\x81\x85" and len(frame) == 2 + 4 + 5
    assert apply_mask(frame[6:], frame[2:6]) == b"hello"


def test_close_payload_and_code():
    assert close_payload(1000) == b"\x03\xe8"
    assert close_code(close_payload(1008, "bad frame")) == 1008
    assert len(close_payload(1008, "x" * 500)) == 2 + 120  # fits a control frame
    assert close_code(b"") == 1005  # no status
    assert server_frame(OP_CLOSE, close_payload(1000)) == b"\x88\x02\x03\xe8"


def test_accept_key_of_rfc_6455():
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_upgrade_request_and_response_heads():
    request = upgrade_request("/streams/CA1", "w1:8000", b"a2V5", {"X-Ticket": "t"})
    first, headers = parse_head(request.split(b"\r\n\r\n")[0])
    assert first == "GET /streams/CA1 HTTP/1.1" and request.endswith(b"\r\n\r\n")
    assert headers == {"host": "w1:8000", "upgrade": "websocket", "connection": "Upgrade",
                       "sec-websocket-key": "a2V5", "sec-websocket-version": "13", "x-ticket": "t"}
    response = upgrade_response(b"dGhlIHNhbXBsZSBub25jZQ==", [(b"server", b"uvicorn")])
    first, headers = parse_head(response[:-4])
    assert first == "HTTP/1.1 101 Switching Protocols" and response.endswith(b"\r\n\r\n")
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" and headers["server"] == "uvicorn"


def test_http_error():
    response = http_error(403, "Forbidden", "bad signature")
    head, body = response.split(b"\r\n\r\n")
    first, headers = parse_head(head)
    assert first == "HTTP/1.1 403 Forbidden" and body == b"bad signature"
    assert headers["content-length"] == "13" and headers["connection"] == "close"
