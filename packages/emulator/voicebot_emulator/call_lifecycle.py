"""Call lifecycles: ringing, answering (with machine detection), following TwiML, ending.

Each call runs as one asyncio task. REST updates (hang up, redirect) do not cancel that task: they
reach it through its CallUpdates, so every ending goes through the same path (stop the stream,
set the final status, status callback, recordings).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from voicebot_emulator import amd_simulation
from voicebot_emulator.amd_simulation import AmdSimulation
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.call_updates import CallEnded, CallUpdates, PendingAction
from voicebot_emulator.call_webhooks import CallWebhooks
from voicebot_emulator.model import Call, utcnow
from voicebot_emulator.recordings import save_call_audio
from voicebot_emulator.scripted_caller import ScriptCursor
from voicebot_emulator.twiml_interpreter import CallerFactory, TwimlInterpreter
from voicebot_simulation.caller_script import Script

if TYPE_CHECKING:
    from voicebot_emulator.emulator import Emulator

log = logging.getLogger(__name__)


class CallRunner:
    def __init__(self, emulator: Emulator, call: Call, script: Script, behaviour: dict[str, Any],
                 caller: CallerFactory | None = None) -> None:
        self.emulator, self.call, self.behaviour = emulator, call, behaviour
        self.settings = emulator.settings
        self.updates = CallUpdates(call)
        self.webhooks = CallWebhooks(emulator.webhook_sender, call)
        self.twiml = TwimlInterpreter(call, self.updates, self.webhooks, ScriptCursor(script),
                                      self.settings.emulator_script_linger_seconds, caller)
        self.status_listeners: list[Callable[[str], None]] = []  # told every status change (softphone)
        self._background: set[asyncio.Task] = set()

    @property
    def call_audio(self) -> CallAudio | None:
        """Both sides of the call's audio so far; None before the answer and once it is on disk."""
        return self.twiml.call_audio

    def request(self, action: PendingAction) -> None:
        """A REST update (or the time limit): acted on at the call's next wait."""
        self.updates.request(action)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def run(self) -> None:
        final = "completed"
        try:
            if self.call.direction == "inbound":
                await self._inbound()
            else:
                await self._outbound()
        except CallEnded as ended:
            final = ended.status
        except Exception as exc:  # a bug here must still end the call cleanly and visibly
            log.exception("call %s failed inside the emulator", self.call.sid)
            self.call.error = f"emulator error: {exc!r}"
            final = "failed" if self.call.status != "in-progress" else "completed"
        finally:
            for task in self._background:
                task.cancel()
        await self._finish(final)

    async def _outbound(self) -> None:
        call, options = self.call, self.call.options
        answer = self.behaviour.get("answer", "human")
        call.log("initiated", answer=answer)
        await self.webhooks.status_callback("initiated", "initiated")
        self.updates.check_pending()
        if answer == "fail":
            call.error = "emulated network failure"
            raise CallEnded("failed")
        self._set_status("ringing")
        await self.webhooks.status_callback("ringing", "ringing")
        if answer == "busy":
            await self.updates.sleep(min(self.settings.emulator_ring_seconds, 0.5))
            raise CallEnded("busy")
        if answer == "no-answer":
            await self.updates.sleep(min(options.timeout_s, self.settings.emulator_no_answer_seconds))
            raise CallEnded("no-answer")
        if options.timeout_s < self.settings.emulator_ring_seconds:
            await self.updates.sleep(options.timeout_s)
            raise CallEnded("no-answer")
        await self.updates.sleep(self.settings.emulator_ring_seconds)
        await self._answer()

        amd = AmdSimulation(options.machine_detection, answer == "voicemail",
                            float(self.behaviour.get("greeting_s", 2.0)))
        if amd.voicemail:
            mailbox = await asyncio.to_thread(amd.mailbox_script, not options.async_amd)
            self.twiml.cursor = ScriptCursor(mailbox)
        extra: dict[str, str] = {}
        if options.machine_detection and not options.async_amd:
            await self.updates.sleep(amd.delay_s)
            extra["AnsweredBy"] = amd_simulation.conclude(amd, self.webhooks, "sync")
        elif options.machine_detection:
            self._spawn(amd_simulation.report_async(amd, self.webhooks))
        await self.twiml.follow(self.twiml.parse(await self.twiml.initial_document(extra)))

    async def _inbound(self) -> None:
        self._set_status("ringing")
        self.call.log("incoming", voice_url=self.call.options.url)
        await self.webhooks.status_callback("initiated", "ringing")
        document = await self.twiml.fetch(self.call.options.url or "", self.call.options.method,
                                          {"CallStatus": "ringing"})
        if document is None:
            raise CallEnded("failed")
        verbs = self.twiml.parse(document)
        if verbs and verbs[0].name == "Reject":
            self.call.twiml_history.append({"verb": "Reject", "reason": verbs[0].attrs.get("reason", "rejected")})
            raise CallEnded("busy" if verbs[0].attrs.get("reason") == "busy" else "canceled")
        await self._answer()
        await self.twiml.follow(verbs)

    async def _answer(self) -> None:
        self.call.start_time = utcnow()
        self.call.answered_monotonic = time.monotonic()
        self.twiml.call_audio = CallAudio()
        self._set_status("in-progress")
        self.call.log("answered")
        await self.webhooks.status_callback("answered", "in-progress")
        if self.call.options.time_limit_s > 0:
            self._spawn(self._time_limit(self.call.options.time_limit_s))

    async def _finish(self, status: str) -> None:
        call = self.call
        if self.updates.session is not None:
            self.updates.session.request_end("hangup")
        if call.start_time is not None:
            call.end_time = utcnow()
            call.ended_monotonic = time.monotonic()
        self._set_status(status)
        call.ended.set()
        call.log("ended", status=status, duration=call.duration_s)
        log.info("call %s (%s) ended: %s after %s s%s", call.sid, call.direction, status, call.duration_s,
                 f"; error: {call.error}" if call.error else "")
        if self.twiml.call_audio is not None:
            try:
                save_call_audio(call, self.twiml.call_audio, self.settings.emulator_recordings_dir,
                                self.emulator.call_log)
            except OSError as exc:
                call.error = call.error or f"could not write audio files: {exc}"
        self.twiml.call_audio = None  # on disk now; a long-running emulator keeps only the files
        await self.webhooks.status_callback("completed", status)
        call.finished.set()

    def _set_status(self, status: str) -> None:
        self.call.status = status
        self.call.updated = utcnow()
        for listener in self.status_listeners:
            listener(status)

    # -- background timers --------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _time_limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.call.log("time-limit", seconds=seconds)
        self.request(PendingAction("hangup"))
