"""The webhooks one call sends to the app as Twilio: TwiML fetches and callbacks, with Twilio's parameters."""

from __future__ import annotations

import httpx

from voicebot_emulator.model import API_VERSION, Call, rfc2822, utcnow
from voicebot_emulator.webhook_sender import WebhookSender


class CallWebhooks:
    def __init__(self, sender: WebhookSender, call: Call) -> None:
        self.sender, self.call = sender, call

    def params(self) -> dict[str, str]:
        """The parameters Twilio sends with every request about this call."""
        call = self.call
        params = {"CallSid": call.sid, "AccountSid": call.account_sid, "From": call.from_, "To": call.to,
                  "Caller": call.from_, "Called": call.to, "CallStatus": call.status,
                  "Direction": call.direction, "ApiVersion": API_VERSION}
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    def sign_stream(self, url: str) -> str:
        """The X-Twilio-Signature of a Media Stream's WebSocket handshake (the URL, no parameters)."""
        return self.sender.sign(url, {})

    async def fetch_twiml(self, url: str, method: str, extra: dict[str, str]) -> str | None:
        """The TwiML document at `url`; None (and the call's error set) when the app did not give one."""
        params = {**self.params(), **extra}
        try:
            response = await self.sender.request(url, params, method)
        except httpx.HTTPError as exc:
            self.call.error = f"TwiML fetch from {url} failed: {exc!r}"
            self.call.log("twiml-fetch-failed", url=url, error=repr(exc))
            return None
        self.call.log("twiml-fetched", url=url, status=response.status_code)
        if response.status_code >= 400:
            self.call.error = f"TwiML fetch from {url} answered HTTP {response.status_code}"
            return None
        return response.text

    async def status_callback(self, event: str, call_status: str) -> None:
        """A call-progress event, if the call asked for this one."""
        options = self.call.options
        if not options.status_callback or event not in options.status_callback_events:
            return
        params = {**self.params(), "CallStatus": call_status, "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(self.call.callback_sequence), "Timestamp": rfc2822(utcnow()) or ""}
        self.call.callback_sequence += 1
        if event == "completed":
            params["CallDuration"] = str(self.call.duration_s)
            params["Duration"] = str((self.call.duration_s + 59) // 60)
        await self.post(options.status_callback, params, options.status_callback_method, f"callback:{event}")

    async def post(self, url: str, params: dict[str, str], method: str, label: str) -> None:
        """A callback whose answer does not matter: the outcome goes to the call's timeline only."""
        try:
            response = await self.sender.request(url, params, method)
            self.call.log(label, url=url, status=response.status_code, call_status=params.get("CallStatus"))
        except httpx.HTTPError as exc:
            self.call.log(label, url=url, error=repr(exc))
