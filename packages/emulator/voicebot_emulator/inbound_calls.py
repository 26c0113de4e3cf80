"""Placing an inbound call as the phone network would: a caller dials one of our numbers.

Shared by the control API (a scripted caller) and the softphone (a person live in the browser), so
both get the same webhooks: the number's own VoiceUrl and StatusCallback when the account owns it
and set them, the emulator's defaults otherwise.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from voicebot_emulator.call_lifecycle import CallRunner
from voicebot_emulator.emulator import Emulator
from voicebot_emulator.model import Call, CallOptions, new_sid
from voicebot_emulator.rest_api import CLIENT_OR_SIP, E164
from voicebot_emulator.twiml_interpreter import CallerFactory
from voicebot_simulation.caller_script import Script


class InvalidNumber(ValueError):
    """A `from` or `to` that is neither E.164 nor a client:/sip: address."""


def check_numbers(*numbers: str) -> None:
    for number in numbers:
        if not (E164.match(number) or CLIENT_OR_SIP.match(number)):
            raise InvalidNumber(f"{number!r} is not an E.164 number")


def with_agent_profile(url: str, agent_profile: str) -> str:
    """`url` with `agent_profile=NAME` added to its query (the gateway honours it on its voice URL)."""
    if not agent_profile:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"agent_profile": agent_profile})) if q)
    return urlunsplit(parts._replace(query=query))


def place_inbound_call(emulator: Emulator, *, from_: str, to: str, script: Script, voice_url: str | None = None,
                       status_callback: str | None = None, agent_profile: str = "",
                       caller: CallerFactory | None = None) -> CallRunner:
    """Start an inbound call from `from_` to `to` (numbers checked by the caller of this function)."""
    owned = emulator.incoming_numbers.by_number(to)
    if voice_url or not (owned and owned.voice_url):
        url, method = voice_url or emulator.settings.emulator_voice_url, "POST"
    else:
        url, method = owned.voice_url, owned.voice_method
    status_method = "POST"
    if not status_callback and owned and owned.status_callback:
        status_callback, status_method = owned.status_callback, owned.status_callback_method
    options = CallOptions(url=with_agent_profile(url, agent_profile), method=method,
                          status_callback=status_callback or emulator.settings.emulator_status_callback_url
                          or None, status_callback_method=status_method)
    call = Call(sid=new_sid("CA"), account_sid=emulator.settings.twilio_account_sid, to=to,
                from_=from_, direction="inbound", options=options, status="ringing")
    call.log("created", to=to, from_=from_, script=script.name)
    return emulator.start(call, script, {"answer": "human"}, caller)
