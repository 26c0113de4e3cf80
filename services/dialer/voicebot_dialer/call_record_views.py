"""A call record (voicebot_core.calls.CallRecord) as the call-records routes answer it, with the numbers
masked for keys that may only read."""

from __future__ import annotations

import re
import time
from typing import Any

from voicebot_core.calls import CallRecord
from voicebot_core.vocabulary import is_terminal_status
from voicebot_dialer.api_keys import Caller

MASK = "•"
_E164 = re.compile(r"^\+\d{7,15}$")
KEPT_HEAD = 5  # '+' and four digits: +1 and the area code of a North American number
KEPT_TAIL = 2


def mask_number(number: str) -> str:
    """'+15551234511' -> '+1555•••••11'; anything not E.164 (`anonymous`, a SIP URI) masked whole."""
    if not number:
        return ""
    if not _E164.match(number):
        return MASK * len(number)
    return number[:KEPT_HEAD] + MASK * (len(number) - KEPT_HEAD - KEPT_TAIL) + number[-KEPT_TAIL:]


def sees_numbers(caller: Caller) -> bool:
    """Full numbers for keys that may place calls; a read-only key (a wallboard, a console for
    supervisors) gets them masked."""
    return caller.allows("place")


def is_live(record: CallRecord) -> bool:
    return not record.ended_at and not is_terminal_status(record.status)


def _time(value: str) -> float | None:
    return float(value) if value else None


def record_view(record: CallRecord, campaign_id: str, full_numbers: bool,
                now: float | None = None) -> dict[str, Any]:
    """`campaign_id`: the campaign of the call's dial job ('' for none), which the record does not hold."""
    live = is_live(record)
    attached_at, ended_at = _time(record.attached_at), _time(record.ended_at)
    end = ended_at or ((time.time() if now is None else now) if live else None)
    show = (lambda n: n) if full_numbers else mask_number
    return {
        "call_sid": record.call_sid, "direction": record.direction, "from": show(record.from_),
        "to": show(record.to), "agent_profile": record.agent_profile, "status": record.status, "live": live,
        "worker_id": record.worker_id, "dial_job_id": record.dial_job_id, "campaign_id": campaign_id,
        "outcome": record.outcome, "end_reason": record.end_reason, "created_at": _time(record.created_at),
        "attached_at": attached_at, "ended_at": ended_at,
        "duration_s": round(max(0.0, end - attached_at), 3) if attached_at and end else None,
        "recording_url": f"/v1/calls/{record.call_sid}/recording" if record.recording else "",
    }
