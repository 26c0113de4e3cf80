"""Call control over Twilio's REST API: hang up or transfer, each after a closing line the caller heard.

The closing line is spoken through the pipeline; only once its marks came back (or, without mark
echoes, its playback time passed) does the worker update the call at Twilio and end the pipeline.
A transfer target is checked once more right before its TwiML is built (E.164, or a SIP URI on a host
in `transfer_sip_hosts`): a refused one is logged and the call goes on without the transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind
from twilio.base.exceptions import TwilioRestException

from voicebot_core import telemetry, twiml
from voicebot_core.profiles import AgentProfile
from voicebot_core.transfer_targets import InvalidTransferTarget, allowed_sip_hosts, check_transfer_target
from voicebot_core.twilio_rest import call_is_gone, make_client
from voicebot_worker.marks import BotUtterance, MarkTracker, PlaybackClock
from voicebot_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

FINAL_SPEECH_TIMEOUT_S = 30.0


@dataclass
class CallEnd:
    """How the call ended, for its record and metrics; until something else ends it, the caller hung up."""

    outcome: str = "completed"
    reason: str = "hangup"

    def set(self, outcome: str, reason: str) -> None:
        self.outcome, self.reason = outcome, reason

    def stopping(self, reason: str) -> None:
        """The pipeline is being stopped for `reason`: it names the end unless something already did."""
        if self.reason == "hangup":
            self.reason = reason


class CallControl:
    """Ends the call (hang up) or hands it to a human (transfer), each after its closing line."""

    def __init__(self, *, call_sid: str, profile: AgentProfile, settings: WorkerSettings, end: CallEnd,
                 tracker: MarkTracker, playback: PlaybackClock, speak: Callable[[str], Awaitable[None]],
                 end_pipeline: Callable[[], Awaitable[None]], closing_started: Callable[[], None],
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._call_sid = call_sid
        self._profile = profile
        self._settings = settings
        self._end = end
        self._tracker = tracker
        self._playback = playback
        self._speak = speak
        self._end_pipeline = end_pipeline
        self._closing_started = closing_started
        self._spawn = spawn
        self.closing = False
        self.trace_parent: dict[str, str] = {}  # the call.session span's traceparent, once the session runs
        self._closing_text: str | None = None
        self._closing_played = asyncio.Event()

    def end_call(self, goodbye: str, reason: str) -> None:
        """Say `goodbye`, then hang up."""
        self._spawn(self._say_then(goodbye, "completed", reason, self._hang_up))

    def transfer_refusal(self) -> str | None:
        """Why this call cannot be transferred (no target, or a target that is not allowed: logged), for
        the LLM; None when it can."""
        return self._checked_target()[1]

    def transfer(self) -> None:
        """Say the transfer message, then redirect the call to the profile's transfer number; nothing at
        all when the target is refused (see `transfer_refusal`)."""
        target, refusal = self._checked_target()
        if refusal is not None:
            return
        self._spawn(self._say_then(self._profile.transfer_message, "transferred", "transfer",
                                   lambda: self._transfer(target)))

    def _checked_target(self) -> tuple[str, str | None]:
        target = self._profile.transfer_number
        if not target:
            return "", "no human agent is available for transfer"
        try:
            return check_transfer_target(target, allowed_sip_hosts(self._settings.transfer_sip_hosts)), None
        except InvalidTransferTarget as exc:
            log.error("transfer refused: %s", exc, extra={"call_sid": self._call_sid})
            return "", "transfer to a human is not available on this call"

    def on_utterance_resolved(self, utterance: BotUtterance) -> None:
        if self._closing_text is not None and utterance.intent and utterance.intent.text == self._closing_text:
            self._closing_played.set()

    async def _say_then(self, text: str, outcome: str, reason: str, action: Callable[[], Awaitable[None]]) -> None:
        """Speak `text`, wait until the caller heard it (its marks came back), then act and end."""
        if self.closing:
            return
        self.closing = True
        self._closing_started()
        self._closing_text = text
        self._closing_played.clear()
        await self._speak(text)
        await self._wait_closing_played()
        self._end.set(outcome, reason)
        await action()
        await self._end_pipeline()

    async def _wait_closing_played(self) -> None:
        deadline = time.monotonic() + FINAL_SPEECH_TIMEOUT_S
        while time.monotonic() < deadline and not self._closing_played.is_set():
            spoken = [u for u in self._tracker.utterances if u.intent and u.intent.text == self._closing_text]
            # Without mark echoes, trust the playback clock (plus a grace period for the echo).
            if spoken and spoken[-1].closed and time.monotonic() > self._playback.play_end + 1.0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing_played.wait(), timeout=0.05)

    async def _hang_up(self) -> None:
        # Explicit parent: this runs in a task spawned under whichever pipecat span was current.
        with telemetry.span("call.hangup", kind=SpanKind.CLIENT, parent=self.trace_parent or None,
                            attrs={"call.sid": self._call_sid, "call.outcome": self._end.outcome}):
            await self._update_call(status="completed")

    async def _transfer(self, target: str) -> None:
        await self._update_call(twiml=twiml.dial(target))

    async def _update_call(self, **fields: str) -> None:
        settings = self._settings
        client = make_client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                             settings.twilio_api_base_url)
        try:
            await asyncio.to_thread(lambda: client.calls(self._call_sid).update(**fields))
        except TwilioRestException as exc:
            if call_is_gone(exc):
                log.info("call already ended at Twilio", extra={"call_sid": self._call_sid})
            else:
                log.error("Twilio call update failed: %s", exc.msg, extra={"call_sid": self._call_sid})
        except Exception as exc:  # network errors must not leave the pipeline hanging
            log.error("Twilio call update failed: %s", exc, extra={"call_sid": self._call_sid})
