"""The gateway's side of a worker stream, behaving like Twilio Media Streams.

Sends `connected`, `start`, then a media frame every 20 ms (silence, or formant speech when told
to talk). Plays the bot's audio on a real-time clock: a `mark` is echoed when the audio before it
has played, and `clear` drops buffered audio and echoes pending marks at once, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

from voicebot_core.audio import FRAME_SAMPLES, MULAW_SILENCE, mulaw_frames, pcm16_to_mulaw
from voicebot_core.tickets import TICKET_HEADER
from voicebot_simulation.formant_voice import synthesize

FRAME_S = 0.02


@dataclass
class Received:
    at: float
    message: dict[str, Any]


@dataclass
class PeerLog:
    messages: list[Received] = field(default_factory=list)
    echoed_marks: list[tuple[float, str]] = field(default_factory=list)
    played: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each bot media chunk as played
    close_code: int | None = None
    close_reason: str = ""

    def events(self, name: str) -> list[Received]:
        return [r for r in self.messages if r.message.get("event") == name]

    def played_s(self, since: float, until: float = float("inf")) -> float:
        """Seconds of bot audio played (not dropped by a `clear`) between `since` and `until`."""
        return sum(max(0.0, min(end, until) - max(start, since)) for start, end in self.played)


class TwilioPeer:
    def __init__(self, url: str, call_sid: str, *, stream_sid: str = "MZ00000000000000000000000000000001",
                 custom_parameters: dict[str, str] | None = None, echo_marks: bool = True,
                 playout_delay_s: float = 0.0) -> None:
        self.url = url
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.custom_parameters = custom_parameters or {}
        self.echo_marks = echo_marks
        self.playout_delay_s = playout_delay_s  # network + jitter buffer: audio plays this long after it arrives
        self.log = PeerLog()
        self._ws: Any = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._play_end = 0.0
        self._pending_marks: list[tuple[float, str]] = []  # (play time, name)
        self._tasks: list[asyncio.Task[Any]] = []
        self._seq = 0
        self.closed = asyncio.Event()
        self.speech_started_at: list[float] = []

    # connection -------------------------------------------------------------------------------
    async def connect(self, *, send_start: bool = True) -> None:
        # tests name the ticket in the URL for brevity; the worker takes it only as a header
        url, _, query = self.url.partition("?ticket=")
        headers = {TICKET_HEADER: query} if query else {}
        self._ws = await websockets.connect(url, max_size=2**20, additional_headers=headers)
        self._tasks.append(asyncio.create_task(self._receive()))
        if send_start:
            try:
                await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                await self.send_json(self.start_message())
            except websockets.ConnectionClosed:  # refused (full, draining): the receive task logged why
                await asyncio.wait_for(self.closed.wait(), 5)
                return
            self._tasks.append(asyncio.create_task(self._send_media()))
            self._tasks.append(asyncio.create_task(self._echo_marks()))

    def start_message(self) -> dict[str, Any]:
        return {
            "event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
            "start": {"accountSid": "AC00000000000000000000000000000000", "streamSid": self.stream_sid,
                      "callSid": self.call_sid, "tracks": ["inbound"],
                      "customParameters": self.custom_parameters,
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
        }

    async def send_json(self, message: dict[str, Any]) -> None:
        await self._ws.send(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        await self._ws.send(text)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    # caller audio -----------------------------------------------------------------------------
    def say(self, text: str, seconds: float | None = None) -> float:
        """Queue formant speech (only its first `seconds`, if given); returns its duration in seconds."""
        mulaw = pcm16_to_mulaw(synthesize(text, 8000)[: None if seconds is None else int(seconds * 8000)])
        for frame in mulaw_frames(mulaw):
            self._outgoing.put_nowait(frame)
        return len(mulaw) / 8000

    async def _send_media(self) -> None:
        silence = bytes([MULAW_SILENCE]) * FRAME_SAMPLES
        next_at = time.monotonic()
        timestamp = 0
        was_speaking = False
        while True:
            try:
                payload = self._outgoing.get_nowait()
                if not was_speaking:
                    self.speech_started_at.append(time.monotonic())
                was_speaking = True
            except asyncio.QueueEmpty:
                payload = silence
                was_speaking = False
            self._seq += 1
            await self.send_json({
                "event": "media", "sequenceNumber": str(self._seq), "streamSid": self.stream_sid,
                "media": {"track": "inbound", "chunk": str(self._seq), "timestamp": str(timestamp),
                          "payload": base64.b64encode(payload).decode()},
            })
            timestamp += 20
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # bot audio --------------------------------------------------------------------------------
    async def _receive(self) -> None:
        try:
            async for raw in self._ws:
                now = time.monotonic()
                message = json.loads(raw)
                self.log.messages.append(Received(now, message))
                event = message.get("event")
                if event == "media":
                    seconds = len(base64.b64decode(message["media"]["payload"])) / 8000
                    starts = max(self._play_end, now + self.playout_delay_s)
                    self._play_end = starts + seconds
                    self.log.played.append((starts, self._play_end))
                elif event == "mark":
                    self._pending_marks.append((max(self._play_end, now), message["mark"]["name"]))
                elif event == "clear":
                    self._play_end = now
                    self.log.played = [(start, min(end, now)) for start, end in self.log.played if start < now]
                    pending, self._pending_marks = self._pending_marks, []
                    for _, name in pending:
                        await self._echo(name)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.log.close_code = self._ws.close_code
            self.log.close_reason = self._ws.close_reason or ""
            self.closed.set()

    async def _echo_marks(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            due = [(t, n) for t, n in self._pending_marks if t <= now]
            self._pending_marks = [(t, n) for t, n in self._pending_marks if t > now]
            for _, name in due:
                await self._echo(name)

    async def _echo(self, name: str) -> None:
        self.log.echoed_marks.append((time.monotonic(), name))
        if self.echo_marks:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self.send_json({"event": "mark", "sequenceNumber": "0", "streamSid": self.stream_sid,
                                      "mark": {"name": name}})

    # waiting helpers ----------------------------------------------------------------------------
    @property
    def playback_end(self) -> float:
        return self._play_end

    async def wait_for(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.02)

    async def wait_bot_quiet(self, silence_s: float = 1.0, timeout: float = 20.0) -> None:
        """Until the bot's audio has finished playing and nothing new arrived for silence_s."""
        def quiet() -> bool:
            media = self.log.events("media")
            return bool(media) and time.monotonic() > max(self._play_end, media[-1].at) + silence_s
        await self.wait_for(quiet, timeout)
