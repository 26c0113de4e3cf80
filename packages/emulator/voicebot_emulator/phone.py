"""The simulated phone's side of a Media Stream: Twilio's wire protocol with real-time audio.

One 20 ms clock drives both directions, on an absolute schedule so it never drifts: each tick sends
one inbound `media` frame (the caller's speech, or mu-law silence, as Twilio sends continuously)
and plays 20 ms of the server's buffered audio into the heard track, echoing each `mark` once
the audio queued before it has played. A caller script runs beside the clock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voicebot_core import audio
from voicebot_core.signatures import SIGNATURE_HEADER
from voicebot_emulator import voices
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.model import Call, new_sid
from voicebot_emulator.script import Script, Step

log = logging.getLogger(__name__)

TICK_S = 0.02
FRAME_BYTES = audio.FRAME_SAMPLES
AUDIBLE_PEAK = 300  # a played frame louder than this (linear peak) counts as bot audio
SEGMENT_GAP_S = 0.3  # a heard segment ends after this much quiet
_SILENT_PCM = np.zeros(FRAME_BYTES, dtype=np.int16)

# why a media session ended
SERVER_CLOSED = "server_closed"
CALLER_HANGUP = "caller_hangup"
CONNECT_FAILED = "connect_failed"


@dataclass
class ScriptCursor:
    """The call's caller script and how far it got (a call may open several streams)."""

    script: Script
    position: int = 0
    last_step_end: float | None = None

    def next_step(self) -> Step | None:
        if self.position >= len(self.script.steps):
            return None
        self.position += 1
        return self.script.steps[self.position - 1]


@dataclass
class _Utterance:
    label: dict[str, Any]
    frames_left: int
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    start: float | None = None


class MediaSession:
    def __init__(
        self,
        *,
        call: Call,
        url: str,
        parameters: dict[str, str],
        signature: str,
        cursor: ScriptCursor,
        call_audio: CallAudio,
        linger_s: float,
    ) -> None:
        self.call, self.url, self.parameters = call, url, parameters
        self.signature, self.cursor, self.call_audio = signature, cursor, call_audio
        self.linger_s = linger_s
        self.stream_sid = new_sid("MZ")
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._sequence = 0
        self._outgoing: deque[tuple[bytes, _Utterance | None]] = deque()
        self._playout: deque[bytes | str] = deque()  # audio chunks and mark names, in arrival order
        self._end_requested = asyncio.Event()
        self._end_reason: str | None = None
        self._server_closed = asyncio.Event()
        self._t0 = 0.0
        # bot-audio tracking for wait_for_bot / barge_in (seconds since call start)
        self.last_audible: float | None = None
        self._segment: dict[str, float] | None = None

    # -- control from the call runner -------------------------------------------------------------
    def request_end(self, reason: str) -> None:
        """End the stream from Twilio's side (REST hang-up, redirect, time limit): stop + close."""
        if self._end_reason is None:
            self._end_reason = reason
        self._end_requested.set()

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self) -> str:
        """Connect, stream until one side ends it; returns the reason (SERVER_CLOSED, ...)."""
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
            if self.cursor.last_step_end is None:
                self.cursor.last_step_end = self.call.now()
            tasks = [
                asyncio.create_task(self._clock(), name="clock"),
                asyncio.create_task(self._receive(), name="receive"),
                asyncio.create_task(self._run_script(), name="script"),
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
        self._close_segment()
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
                        self._playout.append(base64.b64decode(payload, validate=True))
                    except ValueError:
                        self.call.log("bad-media-payload")
                elif event == "mark":
                    self._playout.append(str((message.get("mark") or {}).get("name", "")))
                elif event == "clear":
                    await self._clear()
                else:
                    self.call.log("unknown-event-from-server", event=event)
        except ConnectionClosed:
            pass
        self._server_closed.set()
        self.call.log("server-closed-stream", code=self._ws.close_code)

    async def _clear(self) -> None:
        t = self.call.now()
        self.call.clears.append(t)
        marks = [item for item in self._playout if isinstance(item, str)]
        dropped = sum(len(item) for item in self._playout if isinstance(item, bytes))
        self._playout.clear()
        self.call.log("clear", dropped_ms=dropped // 8, marks_returned=len(marks))
        for name in marks:
            await self._echo_mark(name, cleared=True)

    async def _echo_mark(self, name: str, *, cleared: bool = False) -> None:
        self.call.marks.append({"t": self.call.now(), "name": name, "cleared": cleared})
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

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
            frame, utterance = self._outgoing.popleft() if self._outgoing else (silence, None)
            await self._send({
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"track": "inbound", "chunk": str(tick + 1), "timestamp": str(tick * 20),
                          "payload": base64.b64encode(frame).decode()},
            })
            scheduled = mono_origin + (target - self._t0)
            caller_pcm = _SILENT_PCM if utterance is None else audio.mulaw_to_pcm16(frame)
            self.call_audio.write("caller", caller_pcm, scheduled)
            if utterance is not None:
                self._advance_utterance(utterance)
            await self._play_tick(scheduled)
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

    async def _play_tick(self, scheduled_monotonic: float) -> None:
        played = bytearray()
        while self._playout and len(played) < FRAME_BYTES:
            item = self._playout[0]
            if isinstance(item, str):
                self._playout.popleft()
                await self._echo_mark(item)
                continue
            take = FRAME_BYTES - len(played)
            played += item[:take]
            if len(item) > take:
                self._playout[0] = item[take:]
            else:
                self._playout.popleft()
        while self._playout and isinstance(self._playout[0], str):  # audio before it has now played
            await self._echo_mark(self._playout.popleft())
        if not played:  # the common case between bot turns: no numpy work
            self.call_audio.write("heard", _SILENT_PCM, scheduled_monotonic)
            self._track_bot_audio(False)
            return
        pcm = audio.mulaw_to_pcm16(bytes(played))
        if len(pcm) < FRAME_BYTES:
            pcm = np.concatenate([pcm, _SILENT_PCM[: FRAME_BYTES - len(pcm)]])
        self.call_audio.write("heard", pcm, scheduled_monotonic)
        self._track_bot_audio(int(np.abs(pcm.astype(np.int32)).max()) > AUDIBLE_PEAK)

    def _track_bot_audio(self, audible: bool) -> None:
        now = self.call.now()
        if audible:
            self.last_audible = now
            if self._segment is None:
                self._segment = {"start": now, "end": now + TICK_S}
                self.call.log("bot-audio-start")
            self._segment["end"] = round(now + TICK_S, 3)
        elif self._segment is not None and now - self._segment["end"] >= SEGMENT_GAP_S:
            self._close_segment()

    def _close_segment(self) -> None:
        if self._segment is not None:
            self.call.heard.append({"start": self._segment["start"], "end": self._segment["end"],
                                    "source": "stream"})
            self.call.log("bot-audio-end", duration_s=round(self._segment["end"] - self._segment["start"], 3))
            self._segment = None

    # -- caller script ------------------------------------------------------------------------------
    async def _run_script(self) -> str:
        while (step := self.cursor.next_step()) is not None:
            self.call.log(f"step:{step.kind}", **{k: v for k, v in step.args.items() if k != "pcm"})
            if step.kind == "hangup":
                self.call.log("caller-hangup")
                return CALLER_HANGUP
            await self._run_step(step)
            self.cursor.last_step_end = self.call.now()
        # the script is over without hanging up: stay on the line a while, as a person would
        if await self._wait_server_close(self.linger_s):
            return SERVER_CLOSED
        self.call.log("caller-hangup", why="script ended")
        return CALLER_HANGUP

    async def _run_step(self, step: Step) -> None:
        args = step.args
        if step.kind == "say":
            await self.say(args["text"])
        elif step.kind == "wait_for_bot":
            await self._wait_for_bot(float(args.get("silence_s", 1.0)), float(args.get("timeout_s", 20.0)))
        elif step.kind == "barge_in":
            await self._barge_in(float(args.get("after_s", 0.5)), str(args["say"]),
                                 float(args.get("timeout_s", 20.0)))
        elif step.kind == "silence":
            await asyncio.sleep(float(args["seconds"]))
        elif step.kind == "dtmf":
            for digit in args["digits"]:
                self.call.dtmf.append({"t": self.call.now(), "digit": digit})
                await self._send({"event": "dtmf", "streamSid": self.stream_sid,
                                  "dtmf": {"track": "inbound_track", "digit": digit}})
                await asyncio.sleep(0.25)
        elif step.kind == "play":
            path = self.cursor.script.base_dir / args["path"]
            pcm = await asyncio.to_thread(audio.read_wav_mono, path, audio.TELEPHONY_RATE)
            await self.send_audio(pcm, {"play": str(path)})
        elif step.kind == "expect_hangup":
            if not await self._wait_server_close(float(args.get("timeout_s", 10.0))):
                self.call.log("expect_hangup-timeout")
        elif step.kind == "_pcm":  # emulator-internal: a voicemail greeting or beep
            await self.send_audio(args["pcm"], {"audio": args.get("label", "audio")})

    async def say(self, text: str) -> None:
        voice = voices.get(self.cursor.script.voice)
        # synthesis takes tens of ms of CPU: keep it off the loop that paces every call's audio
        pcm = await asyncio.to_thread(voice, text, audio.TELEPHONY_RATE)
        await self.send_audio(pcm, {"text": text})

    async def send_audio(self, pcm: np.ndarray, label: dict[str, Any]) -> None:
        """Queue the caller's audio on the 20 ms clock and wait until its last frame went out."""
        frames = list(audio.mulaw_frames(audio.pcm16_to_mulaw(pcm)))
        if not frames:
            return
        utterance = _Utterance(label=label, frames_left=len(frames))
        self._outgoing.extend((frame, utterance) for frame in frames)
        await utterance.done

    async def _wait_for_bot(self, silence_s: float, timeout_s: float) -> None:
        since = self.cursor.last_step_end or 0.0
        deadline = self.call.now() + timeout_s
        while self.call.now() < deadline:
            heard_since = self.last_audible is not None and self.last_audible >= since
            if heard_since and not self._playout and self.call.now() - self.last_audible >= silence_s:
                return
            await asyncio.sleep(TICK_S)
        self.call.log("wait_for_bot-timeout", timeout_s=timeout_s)

    async def _barge_in(self, after_s: float, text: str, timeout_s: float) -> None:
        step_start = self.call.now()
        deadline = step_start + timeout_s
        while self.last_audible is None or self.last_audible < step_start:
            if self.call.now() >= deadline:
                self.call.log("barge_in-timeout", timeout_s=timeout_s)
                break
            await asyncio.sleep(TICK_S)
        await asyncio.sleep(after_s)
        self.call.log("barge-in", text=text)
        await self.say(text)

    async def _wait_server_close(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._server_closed.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True
