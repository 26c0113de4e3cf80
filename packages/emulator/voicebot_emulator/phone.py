"""The simulated phone's side of a Media Stream: Twilio's wire protocol with real-time audio.

One 20 ms clock drives both directions, on an absolute schedule so it never drifts: each tick sends
one inbound `media` frame (the caller's speech, or mu-law silence, as Twilio sends continuously)
and plays 20 ms of the server's buffered audio (bot_playout). The caller runs beside the clock and
queues its speech here: a caller script (scripted_caller) or a person live (live_caller).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voicebot_core import audio
from voicebot_core.signatures import SIGNATURE_HEADER
from voicebot_emulator.bot_playout import FRAME_BYTES, SILENT_PCM, TICK_S, BotPlayout
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.model import Call, new_sid

# why a media session ended
SERVER_CLOSED = "server_closed"
CALLER_HANGUP = "caller_hangup"
CONNECT_FAILED = "connect_failed"

# the caller beside the clock: runs until it hangs up (or is cancelled) and returns why it stopped
CallerRun = Callable[[], Coroutine[Any, Any, str]]


@dataclass
class _Utterance:
    label: dict[str, Any]
    frames_left: int
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    start: float | None = None


class MediaSession:
    """One `<Connect><Stream>`: the WebSocket to the app, the 20 ms clock, and the caller's outgoing audio."""

    def __init__(
        self,
        *,
        call: Call,
        url: str,
        parameters: dict[str, str],
        signature: str,
        call_audio: CallAudio,
    ) -> None:
        self.call, self.url, self.parameters = call, url, parameters
        self.signature, self.call_audio = signature, call_audio
        self.stream_sid = new_sid("MZ")
        self.playout = BotPlayout(call, call_audio, self._send_mark)
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._sequence = 0
        # caller frames to send: a script's utterances, or live audio (no utterance to track)
        self._outgoing: deque[tuple[bytes, _Utterance | None]] = deque()
        self._end_requested = asyncio.Event()
        self._end_reason: str | None = None
        self._server_closed = asyncio.Event()
        self._t0 = 0.0

    # -- control from the call runner -------------------------------------------------------------
    def request_end(self, reason: str) -> None:
        """End the stream from Twilio's side (REST hang-up, redirect, time limit): stop + close."""
        if self._end_reason is None:
            self._end_reason = reason
        self._end_requested.set()

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self, caller: CallerRun) -> str:
        """Connect, stream with `caller` (returning why it stopped) beside the clock
        until one side ends it; returns the reason (SERVER_CLOSED, ...)."""
        self.call.log("stream-connecting", url=self.url, stream_sid=self.stream_sid)
        try:
            self._ws = await connect(self.url, additional_headers={SIGNATURE_HEADER: self.signature},
                                     open_timeout=10, ping_interval=None, close_timeout=2)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            self.call.error = f"stream connection to {self.url} failed: {exc}"
            self.call.log("stream-connect-failed", error=str(exc))
            return CONNECT_FAILED
        self.call.log("stream-connected", stream_sid=self.stream_sid)
        tasks: list[asyncio.Task] = []
        try:
            await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, numbered=False)
            await self._send({
                "event": "start",
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.call.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call.sid,
                    "tracks": ["inbound"],
                    "customParameters": self.parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            })
            self._t0 = asyncio.get_running_loop().time()
            tasks = [
                asyncio.create_task(self._clock(), name="clock"),
                asyncio.create_task(self._receive(), name="receive"),
                asyncio.create_task(caller(), name="script"),
                asyncio.create_task(self._end_requested.wait(), name="end-requested"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finished = next(iter(done))
            if finished.get_name() == "receive":
                reason = SERVER_CLOSED
            elif finished.get_name() == "script":
                reason = finished.result() if not finished.exception() else CALLER_HANGUP
                if finished.exception():
                    self.call.error = f"caller script failed: {finished.exception()!r}"
                    self.call.log("script-error", error=repr(finished.exception()))
            elif finished.get_name() == "clock" and finished.exception():
                reason = SERVER_CLOSED  # the socket broke under the sender
            else:
                reason = self._end_reason or CALLER_HANGUP
            return reason
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_stream()

    async def _close_stream(self) -> None:
        self.playout.close_segment()
        # every pending mark is dropped with the stream; Twilio sends nothing more after stop
        ws = self._ws
        if ws is None:
            return
        if not self._server_closed.is_set():
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._send({"event": "stop", "streamSid": self.stream_sid,
                                  "stop": {"accountSid": self.call.account_sid, "callSid": self.call.sid}})
                self.call.log("stop-sent")
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                await asyncio.wait_for(ws.close(code=1000), timeout=3)
        self.call.log("stream-closed", by="server" if self._server_closed.is_set() else "phone")

    # -- wire -------------------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any], *, numbered: bool = True) -> None:
        assert self._ws is not None
        async with self._send_lock:  # sequence numbers go out in the order they are assigned
            if numbered:
                self._sequence += 1
                message = {"event": message["event"], "sequenceNumber": str(self._sequence),
                           **{k: v for k, v in message.items() if k != "event"}}
            event = message["event"]
            self.call.stream_messages[f"sent:{event}"] = self.call.stream_messages.get(f"sent:{event}", 0) + 1
            await self._ws.send(json.dumps(message))

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                    event = message.get("event")
                except (ValueError, AttributeError):
                    self.call.log("bad-frame-from-server", frame=str(raw)[:200])
                    continue
                key = f"received:{event}"
                self.call.stream_messages[key] = self.call.stream_messages.get(key, 0) + 1
                if event == "media":
                    payload = (message.get("media") or {}).get("payload", "")
                    try:
                        self.playout.add_audio(base64.b64decode(payload, validate=True))
                    except ValueError:
                        self.call.log("bad-media-payload")
                elif event == "mark":
                    self.playout.add_mark(str((message.get("mark") or {}).get("name", "")))
                elif event == "clear":
                    await self.playout.clear()
                else:
                    self.call.log("unknown-event-from-server", event=event)
        except ConnectionClosed:
            pass
        self._server_closed.set()
        self.call.log("server-closed-stream", code=self._ws.close_code)

    async def _send_mark(self, name: str) -> None:
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def send_dtmf(self, digit: str) -> None:
        self.call.dtmf.append({"t": self.call.now(), "digit": digit})
        await self._send({"event": "dtmf", "streamSid": self.stream_sid,
                          "dtmf": {"track": "inbound_track", "digit": digit}})

    # -- the 20 ms clock ----------------------------------------------------------------------------
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        silence = bytes([audio.MULAW_SILENCE]) * FRAME_BYTES
        mono_origin = self.call_audio.origin - (loop.time() - self._t0)  # loop time -> monotonic
        tick = 0
        while True:
            target = self._t0 + tick * TICK_S
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame, utterance = self._outgoing.popleft() if self._outgoing else (None, None)
            await self._send({
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"track": "inbound", "chunk": str(tick + 1), "timestamp": str(tick * 20),
                          "payload": base64.b64encode(frame or silence).decode()},
            })
            scheduled = mono_origin + (target - self._t0)
            caller_pcm = SILENT_PCM if frame is None else audio.mulaw_to_pcm16(frame)
            self.call_audio.write("caller", caller_pcm, scheduled)
            if utterance is not None:
                self._advance_utterance(utterance)
            await self.playout.play_tick(scheduled)
            tick += 1

    def _advance_utterance(self, utterance: _Utterance) -> None:
        now = self.call.now()
        if utterance.start is None:
            utterance.start = now
        utterance.frames_left -= 1
        if utterance.frames_left == 0:
            self.call.said.append({**utterance.label, "start": utterance.start, "end": round(now + TICK_S, 3)})
            if not utterance.done.done():
                utterance.done.set_result(None)

    # -- the caller's side ---------------------------------------------------------------------------
    async def send_audio(self, pcm: np.ndarray, label: dict[str, Any]) -> None:
        """Queue the caller's audio on the 20 ms clock and wait until its last frame went out."""
        frames = list(audio.mulaw_frames(audio.pcm16_to_mulaw(pcm)))
        if not frames:
            return
        utterance = _Utterance(label=label, frames_left=len(frames))
        self._outgoing.extend((frame, utterance) for frame in frames)
        await utterance.done

    def queue_live_frame(self, frame: bytes, max_backlog: int) -> bool:
        """Queue one 20 ms mu-law frame of live caller audio; beyond `max_backlog` frames the oldest is
        dropped so the delay to the server cannot grow. True when a frame was dropped."""
        self._outgoing.append((frame, None))
        if len(self._outgoing) > max_backlog:
            self._outgoing.popleft()
            return True
        return False

    async def wait_server_close(self, timeout_s: float) -> bool:
        """True once the server has closed the stream, False when `timeout_s` passed first."""
        try:
            await asyncio.wait_for(self._server_closed.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True
