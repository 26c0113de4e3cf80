"""Call lifecycles: ringing, answering (with machine detection), following TwiML, ending.

Each call runs as one asyncio task. REST updates (hang up, redirect) do not cancel that task: they
leave a pending action and wake whatever the call is waiting on, so every ending goes through the
same path (stop the stream, set the final status, status callback, recordings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
import numpy as np

from voicebot_core import audio, formant_voice
from voicebot_emulator import phone, twiml
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.model import API_VERSION, Call, CallStore, Recording, new_sid, rfc2822, utcnow
from voicebot_emulator.script import Script, Step
from voicebot_emulator.script import load as load_script
from voicebot_emulator.settings import EmulatorSettings
from voicebot_emulator.webhooks import Webhooks

log = logging.getLogger(__name__)

DEFAULT_OUTBOUND_SCRIPT = "outbound-default"
DEFAULT_INBOUND_SCRIPT = "three-turns"
DIAL_LEG_S = 0.5  # how long a <Dial> transfer stays up before the emulated far end hangs up
BEEP_S = 0.5
AMD_HUMAN_S = 0.3  # time to decide "human" (Twilio needs a few seconds; tests need speed)
AMD_MACHINE_START_S = 1.0


@dataclass
class PendingAction:
    kind: str  # hangup | cancel | redirect
    twiml: str | None = None
    url: str | None = None
    method: str = "POST"


class CallEnded(Exception):
    """Raised inside a call's flow to jump to its ending with this final status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class CallRunner:
    def __init__(self, emulator: Emulator, call: Call, script: Script, behaviour: dict[str, Any]) -> None:
        self.emulator, self.call, self.behaviour = emulator, call, behaviour
        self.settings = emulator.settings
        self.cursor = phone.ScriptCursor(script)
        self.call_audio: CallAudio | None = None
        self.session: phone.MediaSession | None = None
        self.pending: PendingAction | None = None
        self._wake = asyncio.Event()
        self._document_url: str | None = None
        self._background: set[asyncio.Task] = set()

    # -- control (REST update) ----------------------------------------------------------------------
    def request(self, action: PendingAction) -> None:
        self.pending = action
        self._wake.set()
        if self.session is not None:
            self.session.request_end(action.kind)

    async def _sleep(self, seconds: float) -> None:
        """Sleep unless a REST update arrives first; then act on it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
        self._check_pending()

    def _check_pending(self) -> None:
        if self.pending is None:
            return
        if self.pending.kind == "cancel" or (self.pending.kind == "hangup" and self.call.status != "in-progress"):
            raise CallEnded("canceled")
        if self.pending.kind == "hangup":
            raise CallEnded("completed")

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
        await self._status_callback("initiated", "initiated")
        self._check_pending()
        if answer == "fail":
            call.error = "emulated network failure"
            raise CallEnded("failed")
        self._set_status("ringing")
        await self._status_callback("ringing", "ringing")
        if answer == "busy":
            await self._sleep(min(self.settings.ring_seconds, 0.5))
            raise CallEnded("busy")
        if answer == "no-answer":
            await self._sleep(min(options.timeout_s, self.settings.no_answer_seconds))
            raise CallEnded("no-answer")
        if options.timeout_s < self.settings.ring_seconds:
            await self._sleep(options.timeout_s)
            raise CallEnded("no-answer")
        await self._sleep(self.settings.ring_seconds)
        await self._answer()

        voicemail = answer == "voicemail"
        greeting_s = float(self.behaviour.get("greeting_s", 2.0))
        amd_delay = self._amd_delay(voicemail, greeting_s)
        if voicemail:
            # the mailbox greeting plays on the line unless sync AMD waited through it already
            if options.machine_detection and not options.async_amd and amd_delay >= greeting_s:
                self.cursor = phone.ScriptCursor(load_script("listen"))
            else:
                self.cursor = phone.ScriptCursor(await asyncio.to_thread(_voicemail_script, greeting_s))
        extra: dict[str, str] = {}
        if options.machine_detection and not options.async_amd:
            await self._sleep(amd_delay)
            call.answered_by = self._amd_result(voicemail)
            call.log("amd", answered_by=call.answered_by, mode="sync")
            extra["AnsweredBy"] = call.answered_by
        elif options.machine_detection:
            self._spawn(self._async_amd(voicemail, amd_delay))
        await self._follow(await self._initial_twiml(extra))

    async def _inbound(self) -> None:
        self._set_status("ringing")
        self.call.log("incoming", voice_url=self.call.options.url)
        await self._status_callback("initiated", "ringing")
        document = await self._fetch_twiml(self.call.options.url or "", "POST", {"CallStatus": "ringing"})
        if document is None:
            raise CallEnded("failed")
        verbs = self._parse(document)
        if verbs and verbs[0].name == "Reject":
            self.call.twiml_history.append({"verb": "Reject", "reason": verbs[0].attrs.get("reason", "rejected")})
            raise CallEnded("busy" if verbs[0].attrs.get("reason") == "busy" else "canceled")
        await self._answer()
        await self._follow_verbs(verbs)

    async def _answer(self) -> None:
        self.call.start_time = utcnow()
        self.call.answered_monotonic = time.monotonic()
        self.call_audio = CallAudio()
        self._set_status("in-progress")
        self.call.log("answered")
        await self._status_callback("answered", "in-progress")
        if self.call.options.time_limit_s > 0:
            self._spawn(self._time_limit(self.call.options.time_limit_s))

    async def _finish(self, status: str) -> None:
        call = self.call
        if self.session is not None:
            self.session.request_end("hangup")
        if call.start_time is not None:
            call.end_time = utcnow()
            call.ended_monotonic = time.monotonic()
        self._set_status(status)
        call.ended.set()
        call.log("ended", status=status, duration=call.duration_s)
        log.info("call %s (%s) ended: %s after %s s%s", call.sid, call.direction, status, call.duration_s,
                 f"; error: {call.error}" if call.error else "")
        try:
            self._write_audio()
        except OSError as exc:
            call.error = call.error or f"could not write audio files: {exc}"
        self.call_audio = None  # on disk now; a long-running emulator keeps only the files
        await self._status_callback("completed", status)
        call.finished.set()

    def _set_status(self, status: str) -> None:
        self.call.status = status
        self.call.updated = utcnow()

    # -- machine detection --------------------------------------------------------------------------
    def _amd_delay(self, voicemail: bool, greeting_s: float) -> float:
        if not voicemail:
            return AMD_HUMAN_S
        if self.call.options.machine_detection == "DetectMessageEnd":
            return greeting_s + BEEP_S
        return AMD_MACHINE_START_S

    def _amd_result(self, voicemail: bool) -> str:
        if not voicemail:
            return "human"
        return "machine_end_beep" if self.call.options.machine_detection == "DetectMessageEnd" else "machine_start"

    async def _async_amd(self, voicemail: bool, delay: float) -> None:
        await asyncio.sleep(delay)
        call, options = self.call, self.call.options
        call.answered_by = self._amd_result(voicemail)
        call.log("amd", answered_by=call.answered_by, mode="async")
        if options.async_amd_callback:
            params = {"CallSid": call.sid, "AccountSid": call.account_sid, "AnsweredBy": call.answered_by,
                      "MachineDetectionDuration": str(round(delay * 1000))}
            await self._post(options.async_amd_callback, params, options.async_amd_callback_method, "amd-callback")

    # -- TwiML --------------------------------------------------------------------------------------
    def _base_params(self) -> dict[str, str]:
        call = self.call
        params = {"CallSid": call.sid, "AccountSid": call.account_sid, "From": call.from_, "To": call.to,
                  "Caller": call.from_, "Called": call.to, "CallStatus": call.status,
                  "Direction": call.direction, "ApiVersion": API_VERSION}
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    async def _initial_twiml(self, extra: dict[str, str]) -> str:
        options = self.call.options
        if options.twiml is not None:
            return options.twiml
        document = await self._fetch_twiml(options.url or "", options.method, extra)
        if document is None:
            raise CallEnded("completed")  # Twilio answers, hits an application error and hangs up
        return document

    async def _fetch_twiml(self, url: str, method: str, extra: dict[str, str]) -> str | None:
        params = {**self._base_params(), **extra}
        self._document_url = url
        try:
            response = await self.emulator.webhooks.request(url, params, method)
        except httpx.HTTPError as exc:
            self.call.error = f"TwiML fetch from {url} failed: {exc!r}"
            self.call.log("twiml-fetch-failed", url=url, error=repr(exc))
            return None
        self.call.log("twiml-fetched", url=url, status=response.status_code)
        if response.status_code >= 400:
            self.call.error = f"TwiML fetch from {url} answered HTTP {response.status_code}"
            return None
        return response.text

    def _parse(self, document: str) -> list[twiml.Verb]:
        try:
            return twiml.parse(document)
        except twiml.TwimlError as exc:
            self.call.error = str(exc)
            self.call.log("twiml-invalid", error=str(exc))
            raise CallEnded("completed") from None

    async def _follow(self, document: str) -> None:
        await self._follow_verbs(self._parse(document))

    async def _follow_verbs(self, verbs: list[twiml.Verb]) -> None:
        index = 0
        while True:
            if self.pending is not None and self.pending.kind == "redirect":
                verbs, index = await self._take_redirect(), 0
                continue
            self._check_pending()
            if index >= len(verbs):
                raise CallEnded("completed")
            verb = verbs[index]
            index += 1
            next_document = await self._execute(verb)
            if next_document is not None:
                verbs, index = self._parse(next_document), 0

    async def _take_redirect(self) -> list[twiml.Verb]:
        action = self.pending
        assert action is not None
        self.pending = None
        self._wake.clear()
        self.call.log("redirected", url=action.url, twiml=action.twiml is not None)
        if action.twiml is not None:
            return self._parse(action.twiml)
        document = await self._fetch_twiml(action.url or "", action.method, {})
        if document is None:
            raise CallEnded("completed")
        return self._parse(document)

    async def _execute(self, verb: twiml.Verb) -> str | None:
        """Run one verb; returns a new TwiML document when the verb redirects."""
        call = self.call
        call.log(f"verb:{verb.name}", text=verb.text, **verb.attrs)
        if verb.name == "Connect":
            call.twiml_history.append({"verb": "Connect", "stream_url": verb.stream_url,
                                       "parameters": verb.stream_parameters})
            await self._stream(verb)
        elif verb.name == "Say":
            call.twiml_history.append({"verb": "Say", "text": verb.text})
            await self._say(verb.text)
        elif verb.name == "Play":
            call.twiml_history.append({"verb": "Play", "url": verb.text})
        elif verb.name == "Pause":
            call.twiml_history.append({"verb": "Pause", "length": float(verb.attrs.get("length", 1))})
            await self._sleep(float(verb.attrs.get("length", 1)))
        elif verb.name == "Dial":
            call.twiml_history.append({"verb": "Dial", "number": verb.text})
            call.log("transfer", number=verb.text)
            await self._sleep(DIAL_LEG_S)
        elif verb.name == "Hangup":
            call.twiml_history.append({"verb": "Hangup"})
            raise CallEnded("completed")
        elif verb.name == "Reject":
            call.twiml_history.append({"verb": "Reject", "reason": verb.attrs.get("reason", "rejected")})
            raise CallEnded("completed")
        elif verb.name == "Redirect":
            url = urljoin(self._document_url or "", verb.text)
            call.twiml_history.append({"verb": "Redirect", "url": url})
            document = await self._fetch_twiml(url, verb.attrs.get("method", "POST"), {})
            if document is None:
                raise CallEnded("completed")
            return document
        else:
            call.twiml_history.append({"verb": verb.name, "unsupported": True})
        return None

    async def _say(self, text: str) -> None:
        pcm = await asyncio.to_thread(formant_voice.synthesize, text, audio.TELEPHONY_RATE)
        assert self.call_audio is not None
        start = self.call.now()
        self.call_audio.write("heard", pcm)
        self.call.heard.append({"start": start, "end": round(start + len(pcm) / audio.TELEPHONY_RATE, 3),
                                "source": "say", "text": text})
        await self._sleep(len(pcm) / audio.TELEPHONY_RATE)

    async def _stream(self, verb: twiml.Verb) -> None:
        assert verb.stream_url is not None and self.call_audio is not None
        session = phone.MediaSession(
            call=self.call,
            url=verb.stream_url,
            parameters=verb.stream_parameters,
            signature=self.emulator.webhooks.sign(verb.stream_url, {}),
            cursor=self.cursor,
            call_audio=self.call_audio,
            linger_s=self.settings.script_linger_seconds,
        )
        self.session = session
        if self.pending is not None:
            session.request_end(self.pending.kind)
        try:
            reason = await session.run()
        finally:
            self.session = None
        self.call.log("stream-ended", reason=reason)
        if reason == phone.CALLER_HANGUP:
            raise CallEnded("completed")

    # -- callbacks ------------------------------------------------------------------------------------
    async def _status_callback(self, event: str, call_status: str) -> None:
        options = self.call.options
        if not options.status_callback or event not in options.status_callback_events:
            return
        params = {**self._base_params(), "CallStatus": call_status, "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(self.call.callback_sequence), "Timestamp": rfc2822(utcnow()) or ""}
        self.call.callback_sequence += 1
        if event == "completed":
            params["CallDuration"] = str(self.call.duration_s)
            params["Duration"] = str((self.call.duration_s + 59) // 60)
        await self._post(options.status_callback, params, options.status_callback_method, f"callback:{event}")

    async def _post(self, url: str, params: dict[str, str], method: str, label: str) -> None:
        try:
            response = await self.emulator.webhooks.request(url, params, method)
            self.call.log(label, url=url, status=response.status_code, call_status=params.get("CallStatus"))
        except httpx.HTTPError as exc:
            self.call.log(label, url=url, error=repr(exc))

    # -- background timers --------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _time_limit(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.call.log("time-limit", seconds=seconds)
        self.request(PendingAction("hangup"))

    # -- audio files ------------------------------------------------------------------------------------
    def _write_audio(self) -> None:
        if self.call_audio is None:
            return
        self.call_audio.end()
        directory = self.settings.recordings_dir
        heard = audio.write_wav(directory / f"{self.call.sid}-heard.wav", self.call_audio.render("heard"), 8000)
        self.call.heard_wav = str(heard)
        if self.call.options.record:
            dual = self.call.options.recording_channels == "dual"
            data = self.call_audio.stereo() if dual else self.call_audio.mixed()
            recording = Recording(sid=new_sid("RE"), account_sid=self.call.account_sid, call_sid=self.call.sid,
                                  path="", channels=2 if dual else 1, duration_s=round(len(data) / 8000))
            recording.path = str(audio.write_wav(directory / f"{recording.sid}.wav", data, 8000))
            self.emulator.store.recordings[recording.sid] = recording
            self.call.recording_sids.append(recording.sid)


def _voicemail_script(greeting_s: float) -> Script:
    """A mailbox: greeting of `greeting_s`, a 1 kHz beep, then it records until hung up."""
    greeting = formant_voice.synthesize("hi, you have reached my voicemail, please leave a message after "
                                        "the tone and I will call you back as soon as I can")
    samples = round(greeting_s * 8000)
    greeting = np.concatenate([greeting, np.zeros(max(0, samples - len(greeting)), np.int16)])[:samples]
    t = np.arange(round(BEEP_S * 8000)) / 8000
    beep = (np.sin(2 * np.pi * 1000 * t) * 12000).astype(np.int16)
    return Script(name="voicemail", voice="formant", steps=(
        Step("_pcm", {"pcm": greeting, "label": "voicemail-greeting"}),
        Step("_pcm", {"pcm": beep, "label": "beep"}),
        Step("expect_hangup", {"timeout_s": 60}),
        Step("hangup", {}),
    ))


class Emulator:
    """State shared by the REST API, the control API and every running call."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.store = CallStore()
        self.numbers: dict[str, dict[str, Any]] = {}
        self.webhooks = Webhooks(settings.twilio_auth_token.get_secret_value())
        self.runners: dict[str, CallRunner] = {}
        self._tasks: set[asyncio.Task] = set()

    def start(self, call: Call, script: Script, behaviour: dict[str, Any]) -> Call:
        self.store.add(call)
        runner = CallRunner(self, call, script, behaviour)
        self.runners[call.sid] = runner
        log.info("call %s (%s) from %s to %s, script %s", call.sid, call.direction, call.from_, call.to, script.name)
        task = asyncio.create_task(runner.run(), name=f"call-{call.sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    def behaviour_for(self, number: str) -> tuple[dict[str, Any], Script]:
        behaviour = dict(self.numbers.get(number) or {"answer": "human"})
        script = load_script(behaviour.get("script") or DEFAULT_OUTBOUND_SCRIPT)
        return behaviour, script

    async def aclose(self) -> None:
        for runner in self.runners.values():
            if not runner.call.terminal:
                runner.request(PendingAction("hangup"))
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in self._tasks:
            task.cancel()
        await self.webhooks.aclose()
