"""The account's phone numbers (Twilio's IncomingPhoneNumbers) as the emulator keeps them.

A number the account owns carries its voice webhook (VoiceUrl, VoiceMethod) and status callback;
an inbound call placed to it (POST /emulator/calls) fetches its TwiML from there, as Twilio does.
The REST side (list, fetch, create, update, delete) is in rest_api.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from voicebot_emulator.model import API_VERSION, new_sid, resource_head, utcnow

# IncomingPhoneNumbers update/create fields -> attribute
WRITABLE = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
}
METHODS = ("GET", "POST")


@dataclass
class IncomingNumber:
    sid: str
    account_sid: str
    phone_number: str
    friendly_name: str = ""
    voice_url: str = ""
    voice_method: str = "POST"
    voice_fallback_url: str = ""
    voice_fallback_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    voice_application_sid: str = ""
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)

    def resource(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{self.sid}.json"
        return {
            **resource_head(self.sid, self.account_sid, self.created, self.updated),
            "phone_number": self.phone_number,
            "friendly_name": self.friendly_name or _friendly(self.phone_number),
            "voice_url": self.voice_url or None,
            "voice_method": self.voice_method,
            "voice_fallback_url": self.voice_fallback_url or None,
            "voice_fallback_method": self.voice_fallback_method,
            "voice_caller_id_lookup": False,
            "voice_application_sid": self.voice_application_sid or None,
            "voice_receive_mode": "voice",
            "status_callback": self.status_callback or None,
            "status_callback_method": self.status_callback_method,
            "sms_url": None,
            "sms_method": "POST",
            "sms_fallback_url": None,
            "sms_fallback_method": "POST",
            "sms_application_sid": None,
            "trunk_sid": None,
            "address_sid": None,
            "address_requirements": "none",
            "bundle_sid": None,
            "identity_sid": None,
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "origin": "twilio",
            "status": "in-use",
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "uri": uri,
            "subresource_uris": {},
        }


def _friendly(number: str) -> str:
    """'+15550100000' -> '(555) 010-0000' for NANP numbers, as Twilio shows them; else the number."""
    digits = number.removeprefix("+1")
    if number.startswith("+1") and len(digits) == 10:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return number


def _pattern(filter_value: str) -> re.Pattern[str]:
    """Twilio's PhoneNumber filter: any part of the number, `*` for any one digit."""
    return re.compile("".join(r"\d" if ch == "*" else re.escape(ch) for ch in filter_value))


class IncomingNumbers:
    """The numbers one account owns, in purchase order."""

    def __init__(self, account_sid: str, numbers: list[str] | tuple[str, ...] = ()) -> None:
        self.account_sid = account_sid
        self._by_sid: dict[str, IncomingNumber] = {}
        for number in numbers:
            self.add(number)

    def add(self, phone_number: str, **fields: str) -> IncomingNumber:
        existing = self.by_number(phone_number)
        if existing is not None:
            return existing
        number = IncomingNumber(sid=new_sid("PN"), account_sid=self.account_sid, phone_number=phone_number)
        self._by_sid[number.sid] = number
        self.update(number, fields)
        return number

    def get(self, sid: str) -> IncomingNumber | None:
        return self._by_sid.get(sid)

    def by_number(self, phone_number: str) -> IncomingNumber | None:
        return next((n for n in self._by_sid.values() if n.phone_number == phone_number), None)

    def remove(self, sid: str) -> bool:
        return self._by_sid.pop(sid, None) is not None

    def matching(self, phone_number: str = "", friendly_name: str = "") -> list[IncomingNumber]:
        pattern = _pattern(phone_number) if phone_number else None
        return [n for n in self._by_sid.values()
                if (pattern is None or pattern.search(n.phone_number))
                and (not friendly_name or n.resource()["friendly_name"] == friendly_name)]

    @staticmethod
    def update(number: IncomingNumber, fields: dict[str, str]) -> IncomingNumber:
        """Apply Twilio form fields (VoiceUrl, VoiceMethod, ...); methods upper-cased and checked."""
        for name, value in fields.items():
            attr = WRITABLE.get(name)
            if attr is None:
                continue
            if attr.endswith("_method"):
                value = (value or "POST").upper()
                if value not in METHODS:
                    raise ValueError(f"{name} must be GET or POST, not {value}")
            setattr(number, attr, value)
        number.updated = utcnow()
        return number
