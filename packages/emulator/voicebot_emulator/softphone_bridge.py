"""The softphone's WebSocket: a browser dials one of our numbers and talks live, over the same path
as every emulated inbound call (voice webhook, TwiML, Media Stream, status callbacks, heard.wav).

Browser -> emulator:
  {"type": "dial", "to": "+1...", "from": "+1...", "agent_profile": ""}   first, once
  binary: caller audio, mu-law 8 kHz mono, any length (160 bytes = 20 ms)
  {"type": "dtmf", "digit": "5"}, {"type": "hangup"}; closing the socket hangs up too
Emulator -> browser:
  {"type": "call", "call_sid": "CA..."}, {"type": "status", "status": "ringing"} on each change,
  binary: bot audio, mu-law 8 kHz, one 20 ms frame at the tick the phone plays it,
  {"type": "clear"} when the server cleared its audio, {"type": "error", "message": "..."},
  {"type": "ended", "status": "completed", "reason": "caller_hangup"}, then the socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import WebSocket, WebSocketDisconnect

from voicebot_emulator.call_lifecycle import CallRunner
from voicebot_emulator.call_updates import PendingAction
from voicebot_emulator.emulator import Emulator
from voicebot_emulator.inbound_calls import InvalidNumber, check_numbers, place_inbound_call
from voicebot_emulator.live_caller import LiveCaller, NoStream, check_key
from voicebot_emulator.model import Call
from voicebot_simulation.caller_script import Script

log = logging.getLogger(__name__)

DEFAULT_FROM = "+15550001111"
LIVE_SCRIPT = Script(name="softphone", steps=())  # the caller is a person: nothing scripted
_CLOSE = None  # on the outgoing queue: the call is over, close the socket
_GONE = (WebSocketDisconnect, RuntimeError, OSError)  # the browser's socket closed under us


class SoftphoneError(ValueError):
    """Bad input from the browser: answered with an `error` message, the socket stays open."""


def same_origin(ws: WebSocket) -> bool:
    """A page from another site must not place calls through the emulator (WebSockets skip CORS);
    clients without an Origin (test and command-line clients) are fine."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


class SoftphoneBridge:
    """One browser socket: at most one call, live caller audio in, the phone's speaker out."""

    def __init__(self, ws: WebSocket, emulator: Emulator) -> None:
        self.ws, self.emulator = ws, emulator
        self.runner: CallRunner | None = None
        self.caller: LiveCaller | None = None
        self._out: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._last_status: str | None = None
        self._hung_up_here = False
        self._watcher: asyncio.Task | None = None

    async def run(self) -> None:
        if not same_origin(self.ws):
            await self.ws.close(code=1008, reason="cross-origin softphone connections are refused")
            return
        await self.ws.accept()
        reader = asyncio.create_task(self._read(), name="softphone-read")
        writer = asyncio.create_task(self._write(), name="softphone-write")
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tasks = [t for t in (reader, writer, self._watcher) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._hang_up()  # the browser went away mid-call: the caller hung up
            with contextlib.suppress(*_GONE):
                await self.ws.close(code=1000)

    # -- browser -> emulator ----------------------------------------------------------------------
    async def _read(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except _GONE:
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                if self.caller is not None:  # audio before the dial (the microphone starting) is dropped
                    self.caller.speak(message["bytes"])
            elif message.get("text") is not None:
                await self._command(message["text"])

    async def _command(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            self._error(f"message is not JSON: {exc}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        handler = {"dial": self._dial, "dtmf": self._dtmf, "hangup": self._hangup_command}.get(str(kind))
        if handler is None:
            self._error(f"unknown message type {kind!r} (expected dial, dtmf or hangup)")
            return
        try:
            await handler(message)
        except SoftphoneError as exc:
            self._error(str(exc))
        except Exception as exc:  # a bug must not take the socket (and the call) down with it
            log.exception("softphone: %s failed", kind)
            self._error(f"{kind} failed inside the emulator: {exc!r}")

    async def _dial(self, message: dict[str, Any]) -> None:
        if self.runner is not None:
            raise SoftphoneError(f"already dialled: call {self.runner.call.sid}")
        to, from_, profile = (_text(message, "to"), _text(message, "from") or DEFAULT_FROM,
                              _text(message, "agent_profile"))
        if not to:
            raise SoftphoneError("dial needs the number to call in `to`")
        try:
            check_numbers(from_, to)
        except InvalidNumber as exc:
            raise SoftphoneError(str(exc)) from None
        offered = self.emulator.settings.softphone_agent_profiles
        if profile and offered and profile not in offered:
            raise SoftphoneError(f"unknown agent profile {profile!r} (offered: {', '.join(offered)})")
        self.caller = LiveCaller(self)
        self.runner = place_inbound_call(self.emulator, from_=from_, to=to, script=LIVE_SCRIPT,
                                         agent_profile=profile, caller=self.caller.attach)
        self.runner.status_listeners.append(self._status)  # before the call's task first runs
        self._send({"type": "call", "call_sid": self.runner.call.sid})
        self._status(self.runner.call.status)
        self._watcher = asyncio.create_task(self._watch_end(self.runner.call), name="softphone-watch")

    async def _dtmf(self, message: dict[str, Any]) -> None:
        try:
            digit = check_key(message.get("digit"))
        except ValueError as exc:
            raise SoftphoneError(str(exc)) from None
        if self.caller is None or self.runner is None or self.runner.call.terminal:
            raise SoftphoneError("no call in progress: dial first")
        try:
            await self.caller.press(digit)
        except (ValueError, NoStream) as exc:
            raise SoftphoneError(str(exc)) from None

    async def _hangup_command(self, _: dict[str, Any]) -> None:
        if self.runner is None:
            raise SoftphoneError("no call to hang up: dial first")
        self._hang_up()

    def _hang_up(self) -> None:
        """The caller hangs up: the open stream ends as a caller hang-up; without one the call is
        ended like a REST hang-up. Either way through the call's own ending path."""
        if self.runner is None or self.caller is None or self.runner.call.terminal or self._hung_up_here:
            return
        self._hung_up_here = True
        if not self.caller.hang_up():
            self.runner.request(PendingAction("hangup"))

    # -- emulator -> browser ----------------------------------------------------------------------
    def played(self, frame: bytes) -> None:
        self._out.put_nowait(frame)

    def cleared(self) -> None:
        self._send({"type": "clear"})

    def _status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self._send({"type": "status", "status": status})

    def _error(self, message: str) -> None:
        self._send({"type": "error", "message": message})

    def _send(self, message: dict[str, Any]) -> None:
        self._out.put_nowait(json.dumps(message))

    async def _watch_end(self, call: Call) -> None:
        await call.finished.wait()  # status set, callbacks sent and heard.wav written
        self._status(call.status)
        ended: dict[str, Any] = {"type": "ended", "status": call.status, "reason": self._end_reason(call)}
        if call.error:
            ended["error"] = call.error
        self._send(ended)
        self._out.put_nowait(_CLOSE)

    def _end_reason(self, call: Call) -> str:
        if self._hung_up_here:
            return "caller_hangup"
        streams = [e["detail"].get("reason") for e in call.timeline if e["event"] == "stream-ended"]
        return str(streams[-1]) if streams else call.status

    async def _write(self) -> None:
        try:
            while (item := await self._out.get()) is not _CLOSE:
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_text(item)
            await self.ws.close(code=1000)
        except _GONE:
            return


def _text(message: dict[str, Any], key: str) -> str:
    value = message.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SoftphoneError(f"`{key}` must be a string")
    return value.strip()
