"""Bodies the dialer API answers with, as documented in its OpenAPI document (the routes build
them as dicts in `views` and `campaigns`; these models check and describe them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from voicebot_core.vocabulary import MachineDetection

DialJobState = str  # scheduled dispatched placing ringing in-progress completed failed canceled (and parked)


class DialEvent(BaseModel):
    """One dial job event; each kind adds its own fields (`state`, `call_status`, `attempt`, ...)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"example": {
        "id": "1764489600000-0", "event_id": "ev_0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "dial_job_id": "dj_3f1c0b9e2a7d4c55", "kind": "job.created", "at": 1764489600.0}})
    id: str | None = Field(None, description="Stream id (pass the page's `next` as `after`); only on /v1/events.")
    event_id: str | None = Field(None, description="Unique id of the event (`ev_` + 32 hex), the same in every "
                                 "webhook delivery of it (`Voicebot-Event-Id`): receivers de-duplicate on it.")
    dial_job_id: str
    kind: str = Field(description="job.created, placed, call.status, call.amd, retry_scheduled, deferred, "
                                  "job.completed, job.failed, job.canceled, ...")
    at: float = Field(description="Unix time.")


class Attempt(BaseModel):
    model_config = ConfigDict(extra="allow")
    attempt: int
    call_sid: str = ""
    result: str


class CallView(BaseModel):
    """A dial job as the API returns it."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"example": {
        "id": "dj_3f1c0b9e2a7d4c55", "state": "scheduled", "outcome": "", "to": "+15551234567",
        "from": "+15550000001", "agent_profile": "sales", "variables": {"name": "Sam"}, "metadata": {},
        "attempt": 1, "max_attempts": 3, "campaign_id": "", "call_sid": "", "answered_by": "",
        "machine_detection": "none", "created_at": 1764489600.0, "next_attempt_at": 1764489600.0,
        "terminal": False}})
    id: str
    state: DialJobState = Field(description="scheduled, dispatched, placing, ringing, in-progress, completed, "
                                            "failed or canceled.")
    outcome: str = Field("", description="How it ended: completed, machine, busy, no-answer, failed, "
                                         "placement-error, placement-lost, placement-unknown, rate-limited, "
                                         "do-not-call, canceled.")
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
    machine_detection: MachineDetection = "none"
    created_at: float
    next_attempt_at: float | None = Field(None, description="Unix time of the next attempt while scheduled.")
    terminal: bool


class CallDetail(CallView):
    """A dial job with its attempts, events, transcript and recording."""

    attempts: list[Attempt]
    events: list[DialEvent]
    transcript: list[dict[str, Any]] | None = Field(None, description="Turns of the call record; null before.")
    recording_url: str = Field("", description="Twilio's recording URL when Twilio recorded the call, else "
                               "`/v1/calls/{id}/recording` once the bot-worker stored a recording; empty before.")


class CallTranscript(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "call_sid": "CA0123456789abcdef0123456789abcdef",
        "entries": [{"role": "assistant", "text": "Hello, this is Ava.", "at": 1764489600.12},
                    {"role": "user", "text": "Hi, I'd like to book a table.", "at": 1764489603.4}]}})
    call_sid: str
    entries: list[dict[str, Any]] = Field(description="Turns in order: `role` (user or assistant), `text`, `at` "
                                          "(Unix time the turn started); interrupted bot turns hold what was heard.")


class CallPage(BaseModel):
    items: list[CallView]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class EventPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"events": [], "next": "1764489600000-0"}})
    events: list[DialEvent]
    next: str = Field(description="Pass as `after` to continue after these events.")


class CampaignProgress(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "id": "cmp_9a8b7c6d5e4f40312a1b2c3d4e5f6a7b", "name": "renewals-march", "status": "active", "total": 2,
        "done": 0, "states": {"scheduled": 2}, "max_concurrent_calls": 5, "calls_per_second": 2.0,
        "created_at": 1764489600.0}})
    id: str
    name: str
    status: str = Field(description="active, paused, canceled or completed.")
    total: int
    done: int = Field(description="Jobs in a terminal state.")
    states: dict[str, int] = Field(description="Job count by state.")
    max_concurrent_calls: int
    calls_per_second: float
    created_at: float


class CampaignPage(BaseModel):
    items: list[CampaignProgress]


class DoNotCallAdded(BaseModel):
    added: int = Field(description="Numbers that were not on the list before.")


class DoNotCallPage(BaseModel):
    numbers: list[str]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class DoNotCallStatus(BaseModel):
    number: str
    do_not_call: bool


class DoNotCallRemoved(BaseModel):
    number: str
    removed: bool
