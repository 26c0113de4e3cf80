"""The emulator's softphone: a live caller over WebSocket (as the browser page is), through the same path
as every emulated inbound call. Against the real stack (emulator, gateway, a bot-worker with the fake
providers) and, for `clear`, against a stub server side whose audio the test controls."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from emulator_fixtures import BotServer, Emulator
from fastapi import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from helpers.constants import TEST_PROFILES_PATH
from voicebot_core import audio
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_emulator import voices
from voicebot_emulator.bot_playout import FRAME_BYTES
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.live_caller import MAX_BACKLOG_FRAMES, LiveCaller
from voicebot_emulator.model import Call, CallOptions
from voicebot_emulator.phone import MediaSession

THREE_TURNS = "+15557000001"  # tests/agent-profiles.yaml: greets, then answers each caller segment
CALLER = "+15550001111"
SILENCE = bytes([audio.MULAW_SILENCE]) * FRAME_BYTES


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url) -> Iterator[Stack]:
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("softphone-stack"), workers=1, worker_capacity=2,
                              profiles_path=TEST_PROFILES_PATH, redis_prefix=f"softphone-{int(time.time() * 1000)}"))
    stack.start()
    yield stack
    stack.stop()


@dataclass
class Softphone:
    """What the browser page does, from Python: text commands, binary audio both ways."""

    ws: ClientConnection
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    frames: list[tuple[float, bytes]] = field(default_factory=list)  # bot audio as the phone played it
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    @classmethod
    async def open(cls, base_url: str) -> Softphone:
        ws = await connect(base_url.replace("http://", "ws://") + "/emulator/softphone/ws", open_timeout=5)
        phone = cls(ws)
        phone._reader = asyncio.create_task(phone._read())
        return phone

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    self.frames.append((time.monotonic(), raw))
                else:
                    self.messages.append((time.monotonic(), json.loads(raw)))
        finally:
            self.closed.set()

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def dial(self, to: str = THREE_TURNS, **extra: str) -> str:
        await self.send({"type": "dial", "to": to, "from": CALLER, **extra})
        return (await self.next_of("call"))["call_sid"]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["type"] == kind]

    async def until(self, predicate: Callable[[], Any], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out; messages: {[m for _, m in self.messages]}"
            await asyncio.sleep(0.02)

    async def next_of(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        seen = len(self.of_type(kind))
        await self.until(lambda: len(self.of_type(kind)) > seen, timeout)
        return self.of_type(kind)[-1]

    async def speak(self, mulaw: bytes, chunk: int = FRAME_BYTES) -> None:
        """Send audio in real time, `chunk` bytes a message, as the page's microphone does."""
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(mulaw), chunk)):
            await self.ws.send(mulaw[offset:offset + chunk])
            await asyncio.sleep(max(0.0, start + (index + 1) * chunk / 8000 - time.monotonic()))

    def audible_frames(self, after: float = 0.0) -> list[bytes]:
        return [frame for t, frame in self.frames if t > after and _peak(frame) > 1000]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


def _peak(mulaw: bytes) -> int:
    return int(np.abs(audio.mulaw_to_pcm16(mulaw).astype(np.int32)).max())


async def _quiet(phone: Softphone, seconds: float = 1.0, timeout: float = 20) -> None:
    """Until the bot has played something and then nothing for `seconds`."""
    await phone.until(lambda: phone.frames and time.monotonic() - phone.frames[-1][0] > seconds, timeout)


async def _report(base_url: str, sid: str, wait: bool = False) -> dict[str, Any]:
    """The emulator's call report; `wait`: once the call is over."""
    path = f"/emulator/calls/{sid}/wait" if wait else f"/emulator/calls/{sid}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return (await client.get(path, params={"timeout": 20})).json()


async def _report_when(base_url: str, sid: str, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not predicate(report := await _report(base_url, sid)):
        assert time.monotonic() < deadline, report
        await asyncio.sleep(0.1)
    return report


# -- against the real stack ---------------------------------------------------------------------------
async def test_dial_plays_the_greeting_as_bot_audio_and_reports_in_progress(stack: Stack) -> None:
    phone = await Softphone.open(stack.urls["emulator"])
    sid = await phone.dial()
    assert sid.startswith("CA")
    await phone.until(lambda: len(phone.audible_frames()) >= 25)  # half a second of the greeting
    statuses = [m["status"] for m in phone.of_type("status")]
    assert statuses[:2] == ["ringing", "in-progress"], statuses
    assert {len(frame) for _, frame in phone.frames} == {FRAME_BYTES}  # one 20 ms frame a message
    arrivals = np.array([t for t, _ in phone.frames[:50]])
    assert 0.015 < float(np.mean(np.diff(arrivals))) < 0.025  # at the phone's play pace, not in bursts
    await phone.send({"type": "hangup"})
    await phone.next_of("ended")
    await phone.close()


async def test_caller_speech_gets_a_reply_after_it_ends(stack: Stack) -> None:
    phone = await Softphone.open(stack.urls["emulator"])
    sid = await phone.dial()
    await _quiet(phone)  # the greeting is over
    pcm = await asyncio.to_thread(voices.get("formant"), "I would like to check my order status", 8000)
    await phone.speak(audio.pcm16_to_mulaw(pcm), chunk=400)  # 50 ms messages: split into 20 ms frames
    speech_end = time.monotonic()
    silence = asyncio.create_task(phone.speak(SILENCE * 150))  # 3 s of line silence after it
    await phone.until(lambda: len(phone.audible_frames(after=speech_end)) >= 25)
    silence.cancel()
    await phone.send({"type": "hangup"})
    assert (await phone.next_of("ended"))["status"] == "completed"
    await phone.close()
    report = await _report(stack.urls["emulator"], sid, wait=True)
    assert len(report["heard"]) >= 2, report["heard"]  # the greeting, then the reply
    assert report["heard"][-1]["start"] > report["heard"][0]["end"]


async def test_dtmf_reaches_the_call(stack: Stack) -> None:
    phone = await Softphone.open(stack.urls["emulator"])
    sid = await phone.dial()
    await phone.until(lambda: "in-progress" in [m["status"] for m in phone.of_type("status")])
    await phone.until(lambda: phone.frames)  # streaming: the greeting plays
    await phone.send({"type": "dtmf", "digit": "5"})
    await phone.send({"type": "dtmf", "digit": "#"})
    report = await _report_when(stack.urls["emulator"], sid, lambda r: len(r["dtmf"]) == 2)
    assert [d["digit"] for d in report["dtmf"]] == ["5", "#"]
    assert report["stream_messages"].get("sent:dtmf") == 2
    assert not phone.of_type("error")
    await phone.send({"type": "hangup"})
    await phone.next_of("ended")
    await phone.close()


async def test_hangup_ends_the_call_as_the_caller_hanging_up(stack: Stack) -> None:
    phone = await Softphone.open(stack.urls["emulator"])
    sid = await phone.dial()
    await phone.until(lambda: phone.frames)
    await phone.send({"type": "hangup"})
    ended = await phone.next_of("ended")
    assert ended == {"type": "ended", "status": "completed", "reason": "caller_hangup"}
    await asyncio.wait_for(phone.closed.wait(), 5)  # the emulator closes the socket after `ended`
    assert phone.of_type("status")[-1]["status"] == "completed"
    report = await _report(stack.urls["emulator"], sid, wait=True)
    assert report["status"] == "completed" and report["direction"] == "inbound"
    events = [e["event"] for e in report["timeline"]]
    assert "stop-sent" in events and "caller-hangup" in events
    assert any(e["event"] == "callback:completed" for e in report["timeline"])  # the status callback


async def test_closing_the_socket_hangs_up(stack: Stack) -> None:
    phone = await Softphone.open(stack.urls["emulator"])
    sid = await phone.dial()
    await phone.until(lambda: phone.frames)
    await phone.close()
    report = await _report(stack.urls["emulator"], sid, wait=True)
    assert report["status"] == "completed"
    assert "stop-sent" in [e["event"] for e in report["timeline"]]


async def test_bad_input_is_answered_with_an_error_and_the_socket_keeps_working(stack: Stack) -> None:
    phone = await Softphone.open(stack.urls["emulator"])
    await phone.send("{not json")
    assert "not JSON" in (await phone.next_of("error"))["message"]
    await phone.send({"type": "dial", "to": "5550100000", "from": CALLER})
    assert "is not an E.164 number" in (await phone.next_of("error"))["message"]
    await phone.send({"type": "dtmf", "digit": "1"})
    assert "dial first" in (await phone.next_of("error"))["message"]
    await phone.send({"type": "hangup"})
    assert "dial first" in (await phone.next_of("error"))["message"]
    await phone.ws.send(SILENCE)  # audio before the dial is dropped quietly

    sid = await phone.dial()  # the same socket still dials
    await phone.until(lambda: phone.frames)
    for bad, expected in ([{"type": "ring"}, "unknown message type 'ring'"], ['["dial"]', "unknown message type"],
                          [{"type": "dtmf", "digit": "A"}, "not a phone key"],
                          [{"type": "dtmf", "digit": "12"}, "not a phone key"],
                          [{"type": "dial", "to": THREE_TURNS}, f"already dialled: call {sid}"],
                          ["", "not JSON"]):
        await phone.send(bad)
        assert expected in (await phone.next_of("error"))["message"], bad
    await phone.send({"type": "dtmf", "digit": "7"})  # still works after all that
    await _report_when(stack.urls["emulator"], sid, lambda r: [d["digit"] for d in r["dtmf"]] == ["7"])
    await phone.send({"type": "hangup"})
    assert (await phone.next_of("ended"))["status"] == "completed"
    await phone.close()


async def test_agent_profile_is_named_in_the_voice_url(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        config = (await client.get(stack.urls["emulator"] + "/emulator/softphone/config")).json()
    assert "fake-idle" in config["agent_profiles"] and config["default_from"] == CALLER
    assert config["numbers"] and config["default_to"] == config["numbers"][0]
    phone = await Softphone.open(stack.urls["emulator"])
    await phone.send({"type": "dial", "to": THREE_TURNS, "agent_profile": "no-such-profile"})
    assert "unknown agent profile" in (await phone.next_of("error"))["message"]
    sid = await phone.dial(agent_profile="fake-idle")
    await phone.until(lambda: phone.frames)
    report = await _report(stack.urls["emulator"], sid)
    incoming = next(e for e in report["timeline"] if e["event"] == "incoming")
    assert incoming["detail"]["voice_url"].endswith("/twilio/voice?agent_profile=fake-idle")
    assert report["twiml"][0]["parameters"]["agent_profile"] == "fake-idle"
    await phone.send({"type": "hangup"})
    await phone.next_of("ended")
    await phone.close()


async def test_a_page_of_another_site_cannot_open_the_softphone_socket(stack: Stack) -> None:
    url = stack.urls["emulator"].replace("http://", "ws://") + "/emulator/softphone/ws"
    with pytest.raises(InvalidStatus) as refused:  # closed before the handshake completes: HTTP 403
        await connect(url, origin="http://evil.example", open_timeout=5)
    assert refused.value.response.status_code == 403
    async with connect(url, origin=stack.urls["emulator"], open_timeout=5) as ws:  # the page's own origin
        await ws.send(json.dumps({"type": "hangup"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "error"  # accepted: no call yet


def test_the_page_is_served_without_external_urls(stack: Stack) -> None:
    base = stack.urls["emulator"]
    page = httpx.get(base + "/softphone", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="to"', 'id="from"', 'id="profile"', 'id="call"', 'id="hangup"', 'id="status"',
                    'id="call-sid"', 'id="log"', 'data-digit="#"'):
        assert element in page.text, element
    for name in ("softphone.js", "softphone.css", "mulaw.js", "mic-worklet.js", "player-worklet.js"):
        response = httpx.get(f"{base}/softphone/static/{name}", timeout=5)
        assert response.status_code == 200, name
        assert "http://" not in response.text and "https://" not in response.text, name
    assert "http" not in page.text.replace("http-equiv", "")


# -- against a stub server side -----------------------------------------------------------------------
CLEARED, NEXT = b"\x10" * 16000, b"\x20" * 1600  # 2 s of one loud constant, then 0.2 s of another


async def _reply_then_clear(ws: WebSocket, bot: BotServer) -> None:
    await bot.until(lambda: bot.messages("start"), timeout=5)
    stream_sid = bot.messages("start")[0]["streamSid"]

    async def media(mulaw: bytes) -> None:
        await ws.send_text(json.dumps({"event": "media", "streamSid": stream_sid,
                                       "media": {"payload": base64.b64encode(mulaw).decode()}}))

    await media(CLEARED)  # a whole reply at once, as TTS bursts it
    await asyncio.sleep(0.5)
    await ws.send_text(json.dumps({"event": "clear", "streamSid": stream_sid}))
    await media(NEXT)
    await asyncio.sleep(1.0)


@pytest.fixture
def owned_number(emulator: Emulator, bot: BotServer) -> Iterator[str]:
    """One of the account's numbers whose VoiceUrl is the stub server (as `voicebot numbers connect` sets)."""
    number = emulator.sdk().incoming_phone_numbers.create(phone_number="+15550177777", voice_url=f"{bot.url}/voice")
    yield number.phone_number
    emulator.sdk().incoming_phone_numbers(number.sid).delete()


async def test_after_clear_no_frame_of_the_cleared_audio_is_forwarded(emulator: Emulator, bot: BotServer,
                                                                      owned_number: str) -> None:
    bot.behaviour = _reply_then_clear
    phone = await Softphone.open(emulator.url)
    sid = await phone.dial(to=owned_number)
    await asyncio.wait_for(phone.closed.wait(), 15)  # the stub closes the stream, the call ends
    assert phone.of_type("ended")[0]["reason"] == "server_closed"
    (clear_at,) = [t for t, m in phone.messages if m["type"] == "clear"]
    before = [frame for t, frame in phone.frames if t < clear_at]
    after = [frame for t, frame in phone.frames if t > clear_at]
    assert before and set(before) == {CLEARED[:FRAME_BYTES]}
    assert 15 <= len(before) <= 35  # about the 0.5 s it played before the clear, then nothing of it
    assert after == [NEXT[:FRAME_BYTES]] * 10  # only the audio sent after the clear
    report = await _report(emulator.url, sid, wait=True)
    assert report["status"] == "completed" and len(report["clears"]) == 1
    await phone.close()


# -- the live caller alone ----------------------------------------------------------------------------
async def test_live_audio_is_framed_at_any_length_and_its_backlog_bounded() -> None:
    call = Call(sid="CA1", account_sid="AC1", to=THREE_TURNS, from_=CALLER, direction="inbound",
                options=CallOptions())
    session = MediaSession(call=call, url="ws://unused", parameters={}, signature="", call_audio=CallAudio())
    caller = LiveCaller(_NoEar())
    caller.speak(b"\x01" * 100)  # before the stream opens: nothing is queued, the framing carries on
    caller.attach(session)
    caller.speak(b"\x02" * 70)  # 100 + 70 bytes: one whole frame, 10 bytes wait for more
    queued = list(session._outgoing)
    assert [frame for frame, _ in queued] == [b"\x01" * 100 + b"\x02" * 60]
    caller.speak(b"\x03" * (FRAME_BYTES * 40 + 150))  # 10 + 6550 bytes: 41 frames at once
    assert len(session._outgoing) == MAX_BACKLOG_FRAMES and caller.dropped_frames == 42 - MAX_BACKLOG_FRAMES
    assert [frame for frame, _ in session._outgoing] == [b"\x03" * FRAME_BYTES] * MAX_BACKLOG_FRAMES


class _NoEar:
    def played(self, frame: bytes) -> None: ...

    def cleared(self) -> None: ...
