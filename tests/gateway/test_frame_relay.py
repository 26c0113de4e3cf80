"""The frame loop both sockets of the byte-level relay share, on made-up sockets."""

import pytest

from voicebot_gateway.frame_relay import FrameRelay
from voicebot_gateway.ws_frames import OP_PING, OP_PONG, OP_TEXT, client_frame, server_frame

MEDIA = (b'{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"20",'
         b'"payload":"' + b"/" * 216 + b'"},"streamSid":"MZ' + b"b" * 32 + b'"}')


class Wire:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


class Side(FrameRelay):
    """A socket of the relay that records what its hooks see."""

    BAD_HEADER = "bad header"

    def __init__(self, masked: bool) -> None:
        self.MASKED = self.MEDIA_ONLY = masked
        self.MAX_FRAME = 1000
        super().__init__(None)  # type: ignore[arg-type]  # no loop: nothing here closes a socket
        self.passing = True
        self.transport = Wire()  # type: ignore[assignment]
        self.peer = Wire()
        self.frames: list[bytes] = []
        self.errors: list[str] = []

    def _frame(self, b0: int, raw: bytes, payload: bytes) -> bool:
        self.frames.append(payload)
        return self._control(b0 & 0x0F, payload) if b0 & 0x0F >= 8 else True

    def _protocol_error(self, reason: str) -> None:
        self.errors.append(reason)

    def _too_large(self, length: int) -> None:
        self.errors.append(f"too large: {length}")
        self.passing = False  # as a stream that ended: later frames are read, none goes on


def test_a_read_of_frames_that_go_on_is_one_write_of_the_same_bytes():
    side = Side(masked=False)
    data = server_frame(OP_TEXT, b"a") + server_frame(OP_TEXT, MEDIA) + server_frame(2, b"\x00")
    side._read_frames(data)
    assert side.peer.writes == [data] and side.relayed == 3 and not side.frames


def test_frames_split_across_reads_go_on_whole():
    side = Side(masked=False)
    data = server_frame(OP_TEXT, MEDIA) * 2
    side._read_frames(data[:3])
    side._read_frames(data[3:500])
    side._read_frames(data[500:])
    assert b"".join(side.peer.writes) == data and side.relayed == 2
    assert side.peer.writes[0] == data[:len(data) // 2]  # nothing goes on before a frame is whole


def test_from_twilio_only_plain_media_goes_on_unparsed():
    side = Side(masked=True)
    media, mark = client_frame(OP_TEXT, MEDIA), client_frame(OP_TEXT, b'{"event":"mark"}')
    side._read_frames(media + media + mark + media)
    assert side.peer.writes == [media + media, media] and side.relayed == 3
    assert side.frames == [b'{"event":"mark"}']


def test_control_frames_are_answered_between_runs():
    side = Side(masked=False)
    frame = server_frame(OP_TEXT, MEDIA)
    side._read_frames(frame + server_frame(OP_PING, b"hi") + frame)
    assert side.peer.writes == [frame, frame]
    [pong] = side.transport.writes
    assert pong[0] == 0x80 | OP_PONG and len(pong) == 2 + 4 + 2  # a client's (masked) pong


@pytest.mark.parametrize(("masked", "frame", "error"), [
    (True, server_frame(OP_TEXT, b"x"), "bad header"),  # unmasked from a client
    (False, client_frame(OP_TEXT, b"x"), "bad header"),  # masked from a server
    (False, b"\xc1\x01x", "bad header"),  # an extension bit
])
def test_broken_frames_end_the_read_after_what_came_before(masked, frame, error):
    side = Side(masked=masked)
    good = (client_frame if masked else server_frame)(OP_TEXT, MEDIA)
    side._read_frames(good + frame + good)
    assert side.errors == [error] and side.peer.writes == [good]


@pytest.mark.parametrize("split", [None, 6, 14, 700, 1010])
def test_a_frame_too_large_is_skipped_unread_and_the_frames_after_it_are_read(split):
    side = Side(masked=True)
    good, big = client_frame(OP_TEXT, MEDIA), client_frame(OP_TEXT, b"x" * 1001)
    data = good + big + client_frame(OP_TEXT, b"after") + client_frame(OP_PING, b"hi")
    cut = len(data) if split is None else len(good) + split  # the big frame's rest comes in a later read
    side._read_frames(data[:cut])
    side._read_frames(data[cut:])
    assert side.errors == ["too large: 1001"] and side.peer.writes == [good]
    assert side.frames == [b"after", b"hi"]  # read as frames: the oversized payload was not
    assert [write[0] for write in side.transport.writes] == [0x80 | OP_PONG]
