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


NUMBERS_MASKED = ("A key with the `read` scope gets it masked (`+1555•••••11`: the first four digits and the "
                  "last two); `place` and `admin` keys get the whole number.")


class CallRecordView(BaseModel):
    """A call of either direction, as the gateway and the bot-worker recorded it."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"example": {
        "call_sid": "CA0123456789abcdef0123456789abcdef", "direction": "outbound", "from": "+15550000001",
        "to": "+15551234511", "agent_profile": "sales", "status": "in-progress", "live": True,
        "worker_id": "worker-1", "dial_job_id": "dj_3f1c0b9e2a7d4c55", "campaign_id": "", "outcome": "",
        "end_reason": "", "created_at": 1764489600.0, "attached_at": 1764489603.5, "ended_at": None,
        "duration_s": 42.125, "recording_url": ""}})
    call_sid: str
    direction: str = Field(description="inbound or outbound.")
    from_: str = Field(alias="from", description=f"The calling number. {NUMBERS_MASKED}")
    to: str = Field(description=f"The called number. {NUMBERS_MASKED}")
    agent_profile: str
    status: str = Field(description="Twilio's latest call status (queued, ringing, in-progress, completed, ...).")
    live: bool = Field(description="Not ended: no `ended_at` and a status that is not final.")
    worker_id: str = Field(description="The bot-worker the call is (or was last) on; empty before one took it.")
    dial_job_id: str = Field(description="The dial job that placed it; empty for inbound calls.")
    campaign_id: str = Field(description="The campaign of its dial job; empty when none.")
    outcome: str = Field(description="How it ended (completed, busy, no-answer, failed, machine, transferred, "
                                     "canceled, rejected); empty while live.")
    end_reason: str = Field(description="Why it ended (hangup, idle, stream_stopped, status_completed, ...); "
                                        "empty while live.")
    created_at: float | None = Field(description="Unix time the call was first recorded.")
    attached_at: float | None = Field(description="Unix time a bot-worker took its media stream; null before.")
    ended_at: float | None = Field(description="Unix time it ended; null while live.")
    duration_s: float | None = Field(description="Seconds on a bot-worker: from `attached_at` to `ended_at` (to "
                                                 "now while live); null before a worker took it.")
    recording_url: str = Field(description="`/v1/calls/{call_sid}/recording` once the bot-worker stored a "
                                           "recording; empty before.")


class CallRecordPage(BaseModel):
    items: list[CallRecordView]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null at the end. A page may "
                                                "hold fewer than `limit` items before the end (a filter that "
                                                "matches few calls): go on while this is not null.")


class CallRecordDetail(CallRecordView):
    """A call record with its events and its transcript so far."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"example": {
        **CallRecordView.model_config["json_schema_extra"]["example"],  # type: ignore[index]
        "events": [{"call_sid": "CA0123456789abcdef0123456789abcdef", "kind": "stream_started",
                    "at": 1764489603.5, "worker_id": "worker-1"}],
        "transcript": [{"role": "assistant", "text": "Hello, this is Ava.", "heard": "Hello, this is Ava.",
                        "interrupted": False, "at": 1764489603.9},
                       {"role": "user", "text": "Hi, I'd like to book a table.", "at": 1764489606.2},
                       {"role": "assistant", "text": "Sure, for how many?", "heard": "Sure, for how many?",
                        "interrupted": False, "at": 1764489607.1, "latency_ms": 640}]}})
    events: list[dict[str, Any]] = Field(description="The call's events in order: `kind` (status, "
                                         "stream_started, hangup_requested, ...), `at` (Unix time), and the "
                                         "kind's own fields.")
    transcript: list[dict[str, Any]] = Field(description="Turns so far (the bot-worker stores them after each "
                                             "bot turn): `role` (user or assistant), `text`, `at`; assistant "
                                             "turns add `heard`, `interrupted` and, when they answer the caller, "
                                             "`latency_ms` (the caller's speech end to the first bot audio). "
                                             "Empty before the first turn.")


class WorkerView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "worker_id": "worker-1", "capacity": 20, "active_calls": 3, "free_slots": 17, "draining": False,
        "last_heartbeat_at": 1764489660.2, "started_at": 1764489000.0}})
    worker_id: str
    capacity: int = Field(description="Calls it takes at once.")
    active_calls: int = Field(description="Calls holding one of its slots (reserved or live).")
    free_slots: int = Field(description="Slots a new call may take (0 while draining).")
    draining: bool = Field(description="Finishing its calls and taking no new ones.")
    last_heartbeat_at: float = Field(description="Unix time of its last heartbeat.")
    started_at: float | None = Field(description="Unix time it registered.")


class WorkerPage(BaseModel):
    items: list[WorkerView]
