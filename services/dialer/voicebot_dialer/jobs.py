"""Turning an accepted request into dial job fields and its first due time."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from voicebot_core.profiles import OVERRIDABLE_FIELDS, load_profiles
from voicebot_core.transfer_targets import InvalidTransferTarget, allowed_sip_hosts, check_transfer_target
from voicebot_dialer.api_keys import Caller
from voicebot_dialer.models import DialOptions
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.window import CallingWindow


class InvalidRequest(ValueError):
    """Valid JSON that names something this deployment does not have (422)."""


class InvalidField(InvalidRequest):
    """A 422 naming the input at fault (`body.overrides`, `campaign.overrides.transfer_number`, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_transfer_override(settings: DialerSettings, options: DialOptions, caller: Caller, field: str) -> None:
    """`overrides.transfer_number` is refused unless the key has the `admin` scope, and then it must be a
    transfer target voicebot_core.transfer_targets accepts (E.164, or SIP on an allow-listed host).
    `field`: where the overrides are (`body.overrides`, `campaign.overrides`)."""
    target = options.overrides.transfer_number
    if target is None:
        return
    if not caller.allows("admin"):
        raise InvalidField(field, f"transfer_number cannot be overridden per call with a `{caller.scope}` key "
                                  f"(an `admin` key may); overridable fields: {', '.join(OVERRIDABLE_FIELDS)}")
    try:
        if not target or not target.isascii():
            raise InvalidTransferTarget("transfer target must be an E.164 number (+<country code><number>, ASCII "
                                        "digits only, e.g. +15551234567) or an allow-listed sip: URI")
        check_transfer_target(target, allowed_sip_hosts(settings.transfer_sip_hosts))
    except InvalidTransferTarget as exc:
        raise InvalidField(f"{field}.transfer_number", str(exc)) from None


def pick_from_number(settings: DialerSettings, to: str) -> str:
    pool = settings.from_numbers
    if not pool:
        raise InvalidRequest("no 'from' given and no default caller-ID pool configured")
    # Stable per callee, so retries show the same caller ID.
    return pool[int(hashlib.sha256(to.encode()).hexdigest(), 16) % len(pool)]


def check_profile(settings: DialerSettings, name: str | None) -> str:
    name = name or settings.dialer_default_profile
    path = Path(settings.agent_profiles_path)
    if not path.exists():
        return name
    profiles = load_profiles(str(path))
    try:
        profiles.get(name or None)
    except KeyError as exc:
        raise InvalidRequest(str(exc.args[0])) from None
    return name


def job_fields(settings: DialerSettings, options: DialOptions, to: str, variables: dict[str, str],
               metadata: dict[str, Any], agent_profile: str, campaign_id: str = "") -> dict[str, Any]:
    return {
        "state": "scheduled", "outcome": "", "to": to,
        "from": options.from_ or pick_from_number(settings, to),
        "agent_profile": agent_profile, "variables": variables, "overrides": options.overrides.stored(),
        "machine_detection": options.machine_detection, "metadata": metadata,
        "webhook_url": str(options.webhook_url) if options.webhook_url else "",
        "calling_window": options.calling_window.model_dump(mode="json") if options.calling_window else "",
        "max_attempts": options.max_attempts or settings.dialer_default_max_attempts,
        "retry": options.retry.model_dump(), "record": settings.dialer_record_calls if options.record is None
        else options.record,
        "attempt": 1, "campaign_id": campaign_id, "call_sid": "", "answered_by": "",
        "schedule_at": options.schedule_at.timestamp() if options.schedule_at else "",
    }


def first_due(options: DialOptions, now: float | None = None) -> float:
    now = time.time() if now is None else now
    due = max(now, options.schedule_at.timestamp()) if options.schedule_at else now
    window: CallingWindow | None = options.calling_window
    return window.next_open(due) if window else due


def fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
