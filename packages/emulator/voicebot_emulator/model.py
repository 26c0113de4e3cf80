"""Calls and recordings as the emulator keeps them, and their Twilio JSON shapes."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def resource_head(sid: str, account_sid: str, created: datetime, updated: datetime) -> dict[str, Any]:
    """The fields every Twilio REST resource starts with."""
    return {"sid": sid, "account_sid": account_sid, "api_version": API_VERSION,
            "date_created": rfc2822(created), "date_updated": rfc2822(updated)}


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format: 'Tue, 31 Aug 2010 20:36:28 +0000'."""
    return format_datetime(moment) if moment else None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    path: str
    channels: int
    duration_s: int
    created: datetime = field(default_factory=utcnow)

    def resource(self) -> dict[str, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{self.sid}"
        return {
            **resource_head(self.sid, self.account_sid, self.created, self.created),
            "call_sid": self.call_sid,
            "conference_sid": None,
            "start_time": rfc2822(self.created),
            "duration": str(self.duration_s),
            "channels": self.channels,
            "source": "OutboundAPI",
            "status": "completed",
            "track": "both",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "encryption_details": None,
            "media_url": f"{base}.wav",
            "uri": f"{base}.json",
            "subresource_uris": {},
        }


@dataclass
class CallOptions:
    """What the REST request (or the inbound control call) asked for."""

    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = ("completed",)
    timeout_s: float = 60.0
    time_limit_s: float = 4 * 3600.0
    machine_detection: str | None = None  # Enable | DetectMessageEnd
    async_amd: bool = False
    async_amd_callback: str | None = None
    async_amd_callback_method: str = "POST"
    record: bool = False
    recording_channels: str = "mono"


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    direction: str  # inbound | outbound-api
    options: CallOptions
    status: str = "queued"
    answered_by: str | None = None
    created: datetime = field(default_factory=utcnow)
    updated: datetime = field(default_factory=utcnow)
    start_time: datetime | None = None
    end_time: datetime | None = None
    created_monotonic: float = field(default_factory=time.monotonic)
    answered_monotonic: float | None = None
    ended_monotonic: float | None = None
    error: str | None = None
    callback_sequence: int = 0
    # report material, appended by the runner and the phone
    timeline: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    heard: list[dict[str, float]] = field(default_factory=list)
    said: list[dict[str, Any]] = field(default_factory=list)
    twiml_history: list[dict[str, Any]] = field(default_factory=list)
    stream_messages: dict[str, int] = field(default_factory=dict)
    heard_wav: str | None = None
    recording_sids: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # final status is set
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # ...and callbacks/files are done

    def now(self) -> float:
        """Seconds since the call was created (monotonic clock)."""
        return round(time.monotonic() - self.created_monotonic, 3)

    def log(self, event: str, **detail: Any) -> None:
        self.timeline.append({"t": self.now(), "event": event, "detail": detail})

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration_s(self) -> int:
        """Whole seconds from answer to end (Twilio's `duration`), 0 if never answered."""
        if self.answered_monotonic is None:
            return 0
        end = self.ended_monotonic or time.monotonic()
        return max(0, round(end - self.answered_monotonic))

    def resource(self) -> dict[str, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            **resource_head(self.sid, self.account_sid, self.created, self.updated),
            "parent_call_sid": None,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": str(self.duration_s) if self.terminal else None,
            "price": None,
            "price_unit": "USD",
            "direction": self.direction,
            "answered_by": self.answered_by,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "uri": f"{base}.json",
            "subresource_uris": {
                "recordings": f"{base}/Recordings.json",
                "notifications": f"{base}/Notifications.json",
                "events": f"{base}/Events.json",
            },
        }

    def report(self) -> dict[str, Any]:
        return {
            "call_sid": self.sid,
            "status": self.status,
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "answered_by": self.answered_by,
            "duration": self.duration_s,
            "timeline": self.timeline,
            "marks": self.marks,
            "clears": self.clears,
            "dtmf": self.dtmf,
            "heard": self.heard,
            "said": self.said,
            "twiml": self.twiml_history,
            "stream_messages": self.stream_messages,
            "error": self.error,
            "heard_wav": self.heard_wav,
            "heard_wav_url": f"/emulator/calls/{self.sid}/heard.wav",
            "recordings": self.recording_sids,
        }


class EmulatedCallLog:
    """Every call and recording since start-up, in creation order (the emulator is short-lived)."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.recordings: dict[str, Recording] = {}

    def add(self, call: Call) -> Call:
        self.calls[call.sid] = call
        return call

    def get(self, sid: str) -> Call | None:
        return self.calls.get(sid)

    def newest_first(self) -> list[Call]:
        return sorted(self.calls.values(), key=lambda c: c.created_monotonic, reverse=True)
