"""Calls through the real twilio SDK: place a dial job's attempt, hang up, leave a voicemail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from voicebot_core.tickets import outbound_url_token
from voicebot_core.twilio_rest import call_is_gone
from voicebot_dialer.settings import DialerSettings

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


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
        "status_callback_event": STATUS_EVENTS, "timeout": settings.dialer_ring_timeout_s,
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


def place(client: Client, settings: DialerSettings, job: dict[str, Any], attempt: int) -> str:
    """Returns the new CallSid; raises TwilioRestException when Twilio refuses the call."""
    return client.calls.create(**create_params(settings, job, attempt)).sid


def hang_up(client: Client, call_sid: str, before_answer: bool) -> None:
    try:
        client.calls(call_sid).update(status="canceled" if before_answer else "completed")
    except TwilioRestException as exc:
        if not call_is_gone(exc):
            raise


def leave_voicemail(client: Client, call_sid: str, message: str) -> None:
    twiml = f"<Response><Say>{escape(message)}</Say><Hangup/></Response>" if message \
        else "<Response><Hangup/></Response>"
    try:
        client.calls(call_sid).update(twiml=twiml)
    except TwilioRestException as exc:
        if not call_is_gone(exc):
            raise
