"""WebSocket (RFC 6455) pieces the byte-level relay writes itself: frames, close payloads, handshakes.

Pure functions; reading frames is `frame_relay.FrameRelay`'s job (one loop for both sockets).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships in the websockets wheels
    from websockets.utils import apply_mask

__all__ = ["apply_mask"]

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_NO_STATUS = 1005
CLOSE_SERVICE_RESTART = 1012
MAX_HEAD_BYTES = 16384  # a handshake response head longer than this is not one


def frame_header(opcode: int, length: int, masked: bool) -> bytes:
    """The header of a final frame (FIN set); a masked one is followed by the 4-byte key."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((0x80 | opcode, mask_bit | length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, length)


def server_frame(opcode: int, payload: bytes = b"") -> bytes:
    return frame_header(opcode, len(payload), False) + payload


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    key = os.urandom(4)
    return frame_header(opcode, len(payload), True) + key + apply_mask(payload, key)


def close_reason(reason: str) -> str:
    """A close reason cut to fit a control frame (125 bytes with the code) on a character boundary:
    a reason cut inside a UTF-8 sequence is invalid and fails the client's close (1007)."""
    return reason.encode()[:120].decode("utf-8", "ignore")


def close_payload(code: int, reason: str = "") -> bytes:
    """Code and reason of a close frame."""
    return struct.pack("!H", code) + close_reason(reason).encode()


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NO_STATUS


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def new_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """An HTTP request or response head (without the blank line): first line, headers by lower-case name."""
    lines = head.split(b"\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return lines[0].decode("latin-1"), headers


def upgrade_request(path: str, host: str, key: bytes, extra: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13",
             *(f"{name}: {value}" for name, value in extra.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upgrade_response(key: bytes, extra: list[tuple[bytes, bytes]]) -> bytes:
    """101 Switching Protocols for a client's Sec-WebSocket-Key, with the server's default headers."""
    head = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in extra]
    return b"".join(head) + b"\r\n"


def http_error(status: int, phrase: str, reason: str) -> bytes:
    """A refused upgrade: plain-text response, then the connection closes."""
    body = reason.encode()
    return (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
