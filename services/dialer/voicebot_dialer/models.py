"""Request and response bodies of the dialer REST API (validated before anything is stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import phonenumbers
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from voicebot_core.vocabulary import MachineDetection
from voicebot_dialer.window import CallingWindow


def to_e164(value: str) -> str:
    """Parse a number written in E.164 ('+' and country code) and return its canonical form."""
    if not isinstance(value, str) or not value.strip().startswith("+"):
        raise ValueError(f"{value!r} is not an E.164 number: write it as +<country code><number>")
    try:
        parsed = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{value!r} is not a possible phone number (wrong length for its country)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    initial_delay_s: float = Field(60.0, ge=0, le=86_400, description="Wait before the second attempt.")
    multiplier: float = Field(2.0, ge=1, le=10, description="Each later wait is this many times longer.")
    max_delay_s: float = Field(3600.0, ge=0, le=7 * 86_400, description="Longest wait between attempts.")

    def delay_before(self, attempt: int) -> float:
        """Wait before `attempt` (2 = first retry)."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempt - 2))


class DialOptions(BaseModel):
    """Fields a single call and a campaign share."""

    model_config = ConfigDict(extra="forbid")
    from_: str | None = Field(None, alias="from", description="Caller ID (E.164); default: the pool.")
    agent_profile: str | None = Field(None, description="Agent profile name; default: the configured one.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Per-call agent profile overrides.")
    schedule_at: datetime | None = Field(None, description="Do not dial before this instant (ISO 8601 with offset).")
    calling_window: CallingWindow | None = None
    max_attempts: int | None = Field(None, ge=1, le=10, description="Attempts in all (busy/no-answer/failed retry).")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    machine_detection: MachineDetection = Field(
        "none", description="Answering machine: 'none' (talk anyway), 'hangup', or 'voicemail' (leave the "
        "profile's voicemail message).")
    record: bool | None = Field(None, description="Record the call; default from the deployment settings.")
    webhook_url: AnyHttpUrl | None = Field(None, description="Signed JSON events are POSTed here.")

    @field_validator("from_")
    @classmethod
    def _from_e164(cls, value: str | None) -> str | None:
        return None if value is None else to_e164(value)

    @field_validator("schedule_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("schedule_at needs a UTC offset, e.g. 2030-01-01T09:00:00+00:00")
        return value


class CallRequest(DialOptions):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"example": {
        "to": "+15551234567", "from": "+15550000001", "agent_profile": "sales",
        "variables": {"name": "Sam", "order_id": "A-1001"},
        "calling_window": {"timezone": "America/New_York", "start": "09:00", "end": "20:00"},
        "max_attempts": 3, "retry": {"initial_delay_s": 120, "multiplier": 2, "max_delay_s": 1800},
        "machine_detection": "voicemail", "metadata": {"crm_id": "42"},
        "webhook_url": "https://example.com/hooks/voicebot",
    }})
    to: str = Field(..., description="Callee, E.164.")
    variables: dict[str, str] = Field(default_factory=dict, description="Filled into the persona and greeting.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Returned as given, never interpreted.")

    @field_validator("to")
    @classmethod
    def _to_e164(cls, value: str) -> str:
        return to_e164(value)

    @field_validator("variables")
    @classmethod
    def _small_variables(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50 or any(len(k) > 64 or len(v) > 1000 for k, v in value.items()):
            raise ValueError("at most 50 variables, names up to 64 and values up to 1000 characters")
        return value


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    variables: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("to")
    @classmethod
    def _to_e164(cls, value: str) -> str:
        return to_e164(value)


class CampaignSettings(DialOptions):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field("", max_length=200)
    max_concurrent_calls: int = Field(10, ge=1, le=10_000, description="Placing + ringing + live, at most.")
    calls_per_second: float = Field(1.0, gt=0, le=1000, description="Placement rate of this campaign.")


class CampaignRequest(CampaignSettings):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"example": {
        "name": "renewals-march", "agent_profile": "sales", "max_concurrent_calls": 5, "calls_per_second": 2,
        "calling_window": {"timezone": "Europe/London", "start": "10:00", "end": "18:00"},
        "contacts": [{"to": "+447700900123", "variables": {"name": "Ada"}}],
    }})
    contacts: list[Contact] = Field(..., min_length=1)


class DoNotCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"numbers": ["+15551230000"]}})
    numbers: list[str] = Field(..., min_length=1, max_length=10_000)

    @field_validator("numbers")
    @classmethod
    def _all_e164(cls, value: list[str]) -> list[str]:
        return [to_e164(v) for v in value]


class CallView(BaseModel):
    """A dial job as the API returns it."""
    id: str
    state: str
    outcome: str = ""
    to: str
    from_: str = Field(alias="from")
    agent_profile: str
    variables: dict[str, str]
    metadata: dict[str, Any]
    attempt: int
    max_attempts: int
    campaign_id: str = ""
    call_sid: str = ""
    answered_by: str = ""
    created_at: float
    next_attempt_at: float | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    transcript: list[dict[str, Any]] | None = None
    recording_url: str = ""

    model_config = ConfigDict(populate_by_name=True)
