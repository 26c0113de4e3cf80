"""Calls through the real twilio SDK: place a dial job's attempt, hang up, redirect to TwiML, look up."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance

from voicebot_core.tickets import outbound_url_token
from voicebot_core.twilio_rest import call_is_gone
from voicebot_core.vocabulary import STATUS_CALLBACK_EVENTS
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.twilio_http import DialerHttpClient, before_write


def outbound_urls(settings: DialerSettings, job_id: str, attempt: int) -> dict[str, str]:
    base = settings.gateway_public_base_url.rstrip("/")
    token = outbound_url_token(settings.stream_ticket_secret.get_secret_value(), job_id, attempt)
    query = urlencode({"dial_job_id": job_id, "attempt": attempt})
    return {
        "url": f"{base}/twilio/outbound/{job_id}?{urlencode({'attempt': attempt, 'token': token})}",
        "status_callback": f"{base}/twilio/status?{query}",
        "amd_callback": f"{base}/twilio/amd?{query}",
    }


def create_params(settings: DialerSettings, job: dict[str, Any], attempt: int) -> dict[str, Any]:
    urls = outbound_urls(settings, job["id"], attempt)
    params: dict[str, Any] = {
        "to": job["to"], "from_": job["from"], "url": urls["url"], "method": "POST",
        "status_callback": urls["status_callback"], "status_callback_method": "POST",
        "status_callback_event": list(STATUS_CALLBACK_EVENTS), "timeout": settings.dialer_ring_timeout_s,
    }
    policy = job.get("machine_detection", "none")
    if policy != "none":
        # Leaving a voicemail needs the beep, so wait for the end of the greeting.
        params["machine_detection"] = "DetectMessageEnd" if policy == "voicemail" else "Enable"
        if settings.dialer_amd_mode == "async":
            params["async_amd"] = "true"
            params["async_amd_status_callback"] = urls["amd_callback"]
            params["async_amd_status_callback_method"] = "POST"
    if job.get("record") == "1":
        params["record"] = True
    return params


class TwilioCalls:
    """The Calls resource of the deployment's Twilio account (or the emulator), client made on first use;
    each request ends within `DialerSettings.twilio_timeout_s` (`DialerHttpClient`)."""

    def __init__(self, settings: DialerSettings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client

    @cached_property
    def client(self) -> Client:
        settings = self._settings
        return self._client or Client(
            settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
            http_client=DialerHttpClient(settings.twilio_api_base_url, settings.twilio_timeout_s))

    def warm_up(self) -> None:
        """Make the next create quick to leave: the SDK's lazily imported Calls resource loaded and
        a connection to Twilio open (`DialerHttpClient.warm_up`)."""
        _ = self.client.calls  # imports the resource's modules on first use (hundreds of ms)
        if isinstance(self.client.http_client, DialerHttpClient):
            self.client.http_client.warm_up()

    def place(self, job: dict[str, Any], attempt: int, check_before_write: Callable[[], None] | None = None) -> str:
        """Returns the new CallSid; raises what `create_errors.classify` sorts (refused, rate limited,
        uncertain: Twilio may have the call, unreachable), or what `check_before_write` raised (nothing
        was sent). `check_before_write` runs with the connection up, just before the request is written."""
        params = create_params(self._settings, job, attempt)
        if check_before_write is None:
            return self.client.calls.create(**params).sid
        with before_write(check_before_write):
            return self.client.calls.create(**params).sid

    def hang_up(self, call_sid: str, before_answer: bool) -> None:
        self._update(call_sid, status="canceled" if before_answer else "completed")

    def redirect(self, call_sid: str, twiml: str) -> None:
        """Make a live call follow `twiml` (a document from `voicebot_core.twiml`) instead."""
        self._update(call_sid, twiml=twiml)

    def fetch(self, call_sid: str) -> CallInstance:
        return self.client.calls(call_sid).fetch()

    def between(self, to: str, from_: str, limit: int = 50) -> list[CallInstance]:
        """Recent calls from `from_` to `to`, newest first."""
        return self.client.calls.list(to=to, from_=from_, limit=limit)

    def _update(self, call_sid: str, **changes: str) -> None:
        try:
            self.client.calls(call_sid).update(**changes)
        except TwilioRestException as exc:
            if not call_is_gone(exc):  # it ended already: nothing left to change
                raise
