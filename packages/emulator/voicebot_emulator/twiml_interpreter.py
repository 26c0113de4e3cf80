"""A call following its TwiML as Twilio does: verb after verb, until a verb or an update ends it.

Say, Pause, Dial, Connect/Stream (the simulated phone streams with its caller), Redirect,
Hangup and Reject; Play is only recorded, other verbs are recorded as unsupported and skipped. A REST redirect
replaces the document between verbs; a hang-up or cancel ends the call at the next wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urljoin

from voicebot_core import audio
from voicebot_emulator import twiml_parser
from voicebot_emulator.call_audio import CallAudio
from voicebot_emulator.call_updates import CallEnded, CallUpdates, PendingAction
from voicebot_emulator.call_webhooks import CallWebhooks
from voicebot_emulator.model import Call
from voicebot_emulator.phone import CALLER_HANGUP, CallerRun, MediaSession
from voicebot_emulator.scripted_caller import ScriptCursor, ScriptedCaller
from voicebot_simulation import formant_voice

DIAL_LEG_S = 0.5  # how long a <Dial> transfer stays up before the emulated far end hangs up

# who is on the caller's end of each stream the call opens (default: the caller script)
CallerFactory = Callable[[MediaSession], CallerRun]


class TwimlInterpreter:
    def __init__(self, call: Call, updates: CallUpdates, webhooks: CallWebhooks, cursor: ScriptCursor,
                 linger_s: float, caller: CallerFactory | None = None) -> None:
        self.call, self.updates, self.webhooks = call, updates, webhooks
        self.cursor = cursor  # the caller's script; every stream the call opens continues it
        self.caller = caller or self._scripted_caller
        self.call_audio: CallAudio | None = None  # both sides of the audio, from the answer on
        self.linger_s = linger_s
        self._document_url: str | None = None  # relative <Redirect> URLs resolve against it

    async def fetch(self, url: str, method: str, extra: dict[str, str]) -> str | None:
        self._document_url = url
        return await self.webhooks.fetch_twiml(url, method, extra)

    async def initial_document(self, extra: dict[str, str]) -> str:
        """An outbound call's TwiML: given inline with the REST request, or fetched from its Url."""
        options = self.call.options
        if options.twiml is not None:
            return options.twiml
        document = await self.fetch(options.url or "", options.method, extra)
        if document is None:
            raise CallEnded("completed")  # Twilio answers, hits an application error and hangs up
        return document

    def parse(self, document: str) -> list[twiml_parser.Verb]:
        try:
            return twiml_parser.parse(document)
        except twiml_parser.TwimlError as exc:
            self.call.error = str(exc)
            self.call.log("twiml-invalid", error=str(exc))
            raise CallEnded("completed") from None

    async def follow(self, verbs: list[twiml_parser.Verb]) -> None:
        """Execute the verbs in order; never returns: the call ends by CallEnded."""
        index = 0
        while True:
            if (action := self.updates.take_redirect()) is not None:
                verbs, index = await self._redirect(action), 0
                continue
            self.updates.check_pending()
            if index >= len(verbs):
                raise CallEnded("completed")
            verb = verbs[index]
            index += 1
            next_document = await self._execute(verb)
            if next_document is not None:
                verbs, index = self.parse(next_document), 0

    async def _redirect(self, action: PendingAction) -> list[twiml_parser.Verb]:
        self.call.log("redirected", url=action.url, twiml=action.twiml is not None)
        if action.twiml is not None:
            return self.parse(action.twiml)
        document = await self.fetch(action.url or "", action.method, {})
        if document is None:
            raise CallEnded("completed")
        return self.parse(document)

    async def _execute(self, verb: twiml_parser.Verb) -> str | None:
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
            await self.updates.sleep(float(verb.attrs.get("length", 1)))
        elif verb.name == "Dial":
            call.twiml_history.append({"verb": "Dial", "number": verb.text})
            call.log("transfer", number=verb.text)
            await self.updates.sleep(DIAL_LEG_S)
        elif verb.name == "Hangup":
            call.twiml_history.append({"verb": "Hangup"})
            raise CallEnded("completed")
        elif verb.name == "Reject":
            call.twiml_history.append({"verb": "Reject", "reason": verb.attrs.get("reason", "rejected")})
            raise CallEnded("completed")
        elif verb.name == "Redirect":
            url = urljoin(self._document_url or "", verb.text)
            call.twiml_history.append({"verb": "Redirect", "url": url})
            document = await self.fetch(url, verb.attrs.get("method", "POST"), {})
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
        await self.updates.sleep(len(pcm) / audio.TELEPHONY_RATE)

    def _scripted_caller(self, session: MediaSession) -> CallerRun:
        # the cursor read at each stream: a voicemail answer replaces it before the first one
        return ScriptedCaller(session, self.cursor, self.linger_s).run

    async def _stream(self, verb: twiml_parser.Verb) -> None:
        assert verb.stream_url is not None and self.call_audio is not None
        session = MediaSession(
            call=self.call,
            url=verb.stream_url,
            parameters=verb.stream_parameters,
            signature=self.webhooks.sign_stream(verb.stream_url),
            call_audio=self.call_audio,
        )
        caller = self.caller(session)
        self.updates.session = session
        if self.updates.pending is not None:
            session.request_end(self.updates.pending.kind)
        try:
            reason = await session.run(caller)
        finally:
            self.updates.session = None
        self.call.log("stream-ended", reason=reason)
        if reason == CALLER_HANGUP:
            raise CallEnded("completed")
