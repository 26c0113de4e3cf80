"""Request bodies of the dialer REST API (validated before anything is stored)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import phonenumbers
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from voicebot_core.profiles import OVERRIDABLE_FIELDS, check_overrides
from voicebot_core.vocabulary import MachineDetection
from voicebot_dialer.json_types import Number, integer
from voicebot_dialer.window import CallingWindow

# '+', then 2 to 15 digits (E.164's most), spaces, dots, dashes or parentheses between them.
E164_PATTERN = r"^\+[1-9](?:[ ().-]*[0-9]){1,14}$"
# Where the document describes a number: the pattern is checked first, then libphonenumber says
# whether the number can exist ("possible": the right length for its country code).
PHONE_SCHEMA = {"type": "string", "pattern": E164_PATTERN, "maxLength": 32, "format": "e164",
                "examples": ["+15551234567"],
                "description": "E.164: '+', country code, number; spaces, dots, dashes and parentheses are "
                               "allowed and dropped. Must be a possible number for its country (422 otherwise)."}


def to_e164(value: str) -> str:
    """Parse a number written in E.164 ('+' and country code) and return its canonical form."""
    if not isinstance(value, str) or not re.fullmatch(E164_PATTERN, value) or len(value) > 32:
        raise ValueError(f"{value!r} is not an E.164 number: write it as +<country code><number>")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{value!r} is not a possible phone number (wrong length for its country)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


PhoneNumber = Annotated[str, AfterValidator(to_e164), WithJsonSchema(PHONE_SCHEMA)]
Variables = Annotated[dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=1000)]],
                      Field(max_length=50)]


# http(s) and a host (pydantic's URL check, besides the document's `format: uri`, refuses an empty one).
WEBHOOK_PATTERN = "^[hH][tT][tT][pP][sS]?://[A-Za-z0-9]"


def _webhook_text(value: Any) -> Any:
    """The document's pattern, checked as written (the URL parser alone would also repair `http:x`)."""
    if not isinstance(value, str) or not re.match(WEBHOOK_PATTERN, value):
        raise ValueError("webhook_url is an http(s) URL with a host, e.g. https://example.com/hooks/voicebot")
    return value


# Years 2000-2999: far enough, and calendar arithmetic (calling windows) never leaves datetime's range.
INSTANT_PATTERN = r"^2[0-9]{3}-"


def _text_instant(value: Any) -> Any:
    """Instants are RFC 3339 strings (pydantic alone would also take Unix numbers) in years 2000-2999."""
    if not isinstance(value, str) or not re.match(INSTANT_PATTERN, value):
        raise ValueError("schedule_at is an RFC 3339 string with a UTC offset in the years 2000-2999, "
                         "e.g. 2030-01-01T09:00:00+00:00")
    return value


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    initial_delay_s: Number = Field(60.0, ge=0, le=86_400, description="Wait before the second attempt.")
    multiplier: Number = Field(2.0, ge=1, le=10, description="Each later wait is this many times longer.")
    max_delay_s: Number = Field(3600.0, ge=0, le=7 * 86_400, description="Longest wait between attempts.")

    def delay_before(self, attempt: int) -> float:
        """Wait before `attempt` (2 = first retry)."""
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier ** max(0, attempt - 2))


class GreetingOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inbound: str | None = Field(None, max_length=2000)
    outbound: str | None = Field(None, max_length=2000)


Text = Annotated[str | None, Field(max_length=2000)]


# What the document says a transfer target override looks like; the API checks it with
# voicebot_core.transfer_targets (a SIP host must also be allow-listed) once it knows the key's scope.
TRANSFER_TARGET_PATTERN = r"^(?:\+[1-9][0-9]{1,14}|[sS][iI][pP][sS]?:.+)$"


class ProfileOverrides(BaseModel):
    """The agent profile fields one call may override: what the agent says and how it sounds, and, with an
    `admin` key only, where a transfer goes (`transfer_number`, checked by the routes: jobs.check_transfer_override).
    Its tools, providers and keys, and recording are not overridable (422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "greeting": {"outbound": "Hi {name}, this is Robin from Acme."}, "voice": "aura-asteria-en"}})
    persona: str | None = Field(None, max_length=20_000, description="System prompt; `{variable}`s are filled.")
    voice: Annotated[str | None, Field(max_length=200)] = Field(None, description="TTS voice of the provider.")
    language: Annotated[str | None, Field(max_length=35)] = Field(None, description="Language tag, e.g. en.")
    greeting: GreetingOverrides | None = None
    idle_timeout_s: Number | None = Field(None, ge=1, le=60, description="Silence before an idle prompt.")
    idle_prompt: Text = None
    max_idle_prompts: integer(0, 5) | None = None
    idle_goodbye: Text = None
    goodbye: Text = None
    transfer_message: Text = None
    voicemail_message: Text = None
    transfer_number: Annotated[str | None, Field(max_length=300)] = Field(
        None, json_schema_extra={"pattern": TRANSFER_TARGET_PATTERN}, description=(
            "Only with an `admin` key (any other key: 422). Where a transfer to a person goes: an E.164 number, "
            "digits only (`+15551234567`), or a `sip:` URI whose host is in the deployment's "
            "`VOICEBOT_TRANSFER_SIP_HOSTS` (422 otherwise)."))

    @model_validator(mode="before")
    @classmethod
    def _only_overridable(cls, value: Any) -> Any:
        if isinstance(value, dict):  # names the refused field(s) and the allow-list
            check_overrides({k: v for k, v in value.items() if k != ADMIN_OVERRIDE})
        return value

    def stored(self) -> dict[str, Any]:
        """The overrides as the dial job keeps them: only the fields given."""
        return self.model_dump(exclude_none=True)


ADMIN_OVERRIDE = "transfer_number"  # overridable with an `admin` key only
assert set(ProfileOverrides.model_fields) == {*OVERRIDABLE_FIELDS, ADMIN_OVERRIDE}, \
    "overrides model and profiles disagree"


class DialOptions(BaseModel):
    """Fields a single call and a campaign share."""

    model_config = ConfigDict(extra="forbid")
    from_: PhoneNumber | None = Field(None, alias="from", description="Caller ID (E.164); default: the pool.")
    agent_profile: str | None = Field(None, description="Agent profile name; default: the configured one.")
    overrides: ProfileOverrides = Field(default_factory=ProfileOverrides, description=(
        "Per-call agent profile overrides, only of the fields listed (conversation: "
        f"{', '.join(OVERRIDABLE_FIELDS)}; with an `admin` key also transfer_number); any other field (tools, "
        "providers, ...) is a 422, and so is transfer_number with a `read` or `place` key."))
    schedule_at: Annotated[datetime, BeforeValidator(_text_instant)] | None = Field(
        None, description="Do not dial before this instant (RFC 3339 with a UTC offset, years 2000-2999).",
        json_schema_extra={"pattern": INSTANT_PATTERN})
    calling_window: CallingWindow | None = None
    max_attempts: integer(1, 10) | None = Field(None,
                                           description="Attempts in all (busy/no-answer/failed retry).")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    machine_detection: MachineDetection = Field(
        "none", description="Answering machine: 'none' (talk anyway), 'hangup', or 'voicemail' (leave the "
        "profile's voicemail message).")
    record: StrictBool | None = Field(None, description="Record the call; default from the deployment settings.")
    webhook_url: Annotated[AnyHttpUrl, BeforeValidator(_webhook_text)] | None = Field(
        None, description="Signed JSON events are POSTed here (http or https).",
        json_schema_extra={"pattern": WEBHOOK_PATTERN})

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
    to: PhoneNumber = Field(..., description="Callee, E.164.")
    variables: Variables = Field(default_factory=dict, description="Filled into the persona and greeting: at most "
                                 "50, names up to 64 and values up to 1000 characters.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Returned as given, never interpreted.")


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: PhoneNumber
    variables: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class CampaignSettings(DialOptions):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field("", max_length=200)
    max_concurrent_calls: integer(1, 10_000) = Field(10, description="Placing + ringing + live, at most.")
    calls_per_second: Number = Field(1.0, gt=0, le=1000, description="Placement rate of this campaign.")


class CampaignRequest(CampaignSettings):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"example": {
        "name": "renewals-march", "agent_profile": "sales", "max_concurrent_calls": 5, "calls_per_second": 2,
        "calling_window": {"timezone": "Europe/London", "start": "10:00", "end": "18:00"},
        "contacts": [{"to": "+447700900123", "variables": {"name": "Ada"}}],
    }})
    contacts: list[Contact] = Field(..., min_length=1)


class DoNotCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"numbers": ["+15551230000"]}})
    numbers: list[PhoneNumber] = Field(..., min_length=1, max_length=10_000)
