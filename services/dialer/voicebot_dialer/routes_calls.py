"""Routes for single dial jobs (/v1/calls) and the event feed (/v1/events)."""

# No `from __future__ import annotations`: FastAPI resolves Depends() of closures at runtime.

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind

from voicebot_core import telemetry
from voicebot_core.metrics import DIAL_JOBS
from voicebot_dialer.api_keys import Caller
from voicebot_dialer.auth import Auth
from voicebot_dialer.errors import responses
from voicebot_dialer.event_feed import STREAM_ID_PATTERN, DialEventFeed
from voicebot_dialer.job_store import IdempotencyConflict
from voicebot_dialer.jobs import check_profile, check_transfer_override, fingerprint, first_due, job_fields
from voicebot_dialer.models import PHONE_SCHEMA, CallRequest
from voicebot_dialer.response_models import CallDetail, CallPage, CallView, EventPage
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.views import MAX_CURSOR, e164_or_422, job_view, key_id

JobId = Annotated[str, Path(max_length=200, description="Dial job id (`dj_...`).")]
# The create -> read -> cancel flow, for readers and for generators of stateful tests.
JOB_LINKS = {
    "getCall": {"operationId": "getCall", "parameters": {"job_id": "$response.body#/id"},
                "description": "Read the dial job just created."},
    "cancelCall": {"operationId": "cancelCall", "parameters": {"job_id": "$response.body#/id"},
                   "description": "Cancel the dial job just created."},
}


def build_router(dialer: DialerService, settings: DialerSettings, auth: Auth) -> APIRouter:
    router = APIRouter()

    # calls
    @router.post("/v1/calls", status_code=201, tags=["calls"], operation_id="createCall", response_model=CallView,
                 responses={201: {"description": "Dial job created", "links": JOB_LINKS},
                            200: {"model": CallView, "links": JOB_LINKS,
                                  "description": "Idempotency-Key seen before: the first job"},
                            **responses(400, 403, 409, 413)}, **auth.route("place"))
    def create_call(body: CallRequest, caller: Annotated[Caller, Depends(auth.require("place"))], request: Request,
                    idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JSONResponse:
        """Queue one outbound call. The same `Idempotency-Key` never makes a second job."""
        check_transfer_override(settings, body, caller, "body.overrides")
        with telemetry.span("dialer.create_dial_job", kind=SpanKind.SERVER,
                            parent=telemetry.request_parent(request.headers),
                            attrs={"agent.profile": body.agent_profile}) as create_span:
            response, job_id = _create_call(body, caller.key, idempotency_key)
            create_span.set_attribute("dial_job.id", job_id)
        return response

    def _create_call(body: CallRequest, api_key: str, idempotency_key: str | None) -> tuple[JSONResponse, str]:
        profile = check_profile(settings, body.agent_profile)
        fields = job_fields(settings, body, body.to, body.variables, body.metadata, profile)
        traceparent = telemetry.current_traceparent()
        if traceparent:  # the placement task (another process) continues this trace
            fields["traceparent"] = traceparent
        scoped_key = f"{key_id(api_key)}:{idempotency_key}" if idempotency_key else None
        try:
            job_id, created = dialer.store.create(fields, first_due(body), scoped_key,
                                                  fingerprint(body.model_dump(mode="json", by_alias=True)))
        except IdempotencyConflict as exc:
            raise HTTPException(409, f"Idempotency-Key already used for dial job {exc.job_id} with "
                                     "a different request body") from None
        job = dialer.store.get(job_id)
        if created:
            DIAL_JOBS.labels(source="api").inc()
            dialer.lifecycle.event(job, "job.created")
        return JSONResponse(job_view(dialer.store, job, detail=False), status_code=201 if created else 200), job_id

    @router.get("/v1/calls", tags=["calls"], operation_id="listCalls", response_model=CallPage,
                responses=responses(), **auth.route("read"))
    def list_calls(state: str | None = None, campaign_id: str | None = None,
                   to: Annotated[str | None, Query(json_schema_extra=PHONE_SCHEMA)] = None,
                   cursor: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        """Newest first; `next_cursor` pages on (null at the end)."""
        to = None if to is None else e164_or_422(to)
        items: list[dict[str, Any]] = []
        position = cursor
        page = 200
        while len(items) < limit:
            if campaign_id:
                ids = dialer.campaigns.job_ids(campaign_id)[position:position + page]
            else:
                ids = dialer.store.list_ids(position, page)
            if not ids:
                position = -1
                break
            for job_id in ids:
                position += 1
                job = dialer.store.get(job_id)
                if job and (not state or job["state"] == state) and (not to or job["to"] == to):
                    items.append(job_view(dialer.store, job, detail=False))
                    if len(items) == limit:
                        break
        return {"items": items, "next_cursor": position if position >= 0 else None}

    @router.get("/v1/calls/{job_id}", tags=["calls"], operation_id="getCall", response_model=CallDetail,
                responses=responses(404), **auth.route("read"))
    def get_call(job_id: JobId) -> dict[str, Any]:
        """State, attempts, events, transcript and recording of a dial job."""
        job = dialer.store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no dial job {job_id}")
        view = job_view(dialer.store, job, detail=True)
        if job.get("call_sid"):
            # The gateway and the bot-worker write the call record (voicebot_core.calls.CallStore);
            # Twilio's own recording (RecordingUrl of the final callback) wins over the bot-worker's,
            # which only this API serves (routes_call_media).
            record = dialer.call_records.record(job["call_sid"])
            view["transcript"] = dialer.call_records.transcript(job["call_sid"])
            worker_recording = f"/v1/calls/{job_id}/recording" if record and record.recording else ""
            view["recording_url"] = job.get("recording_url") or worker_recording
        return view

    def _cancel(job_id: str) -> dict[str, Any]:
        job = dialer.cancel(job_id)
        if job is None:
            raise HTTPException(404, f"no dial job {job_id}")
        return job_view(dialer.store, dialer.store.get(job_id) or job, detail=False)

    @router.post("/v1/calls/{job_id}/cancel", tags=["calls"], operation_id="cancelCall", response_model=CallView,
                 responses=responses(403, 404), **auth.route("place"))
    def cancel_call(job_id: JobId) -> dict[str, Any]:
        """Cancel a dial job; a ringing or live call is hung up. The job stays readable (state `canceled`);
        cancelling an ended job changes nothing."""
        return _cancel(job_id)

    @router.delete("/v1/calls/{job_id}", tags=["calls"], operation_id="deleteCall", response_model=CallView,
                   responses=responses(403, 404), deprecated=True, **auth.route("place"))
    def delete_call(job_id: JobId) -> dict[str, Any]:
        """Deprecated alias of `POST /v1/calls/{job_id}/cancel` (the job is canceled, not deleted: it stays
        readable)."""
        return _cancel(job_id)

    # events
    @router.get("/v1/events", tags=["events"], operation_id="listEvents", response_model=EventPage,
                responses=responses(), **auth.route("read"))
    async def events(request: Request,
                     after: Annotated[str, Query(pattern=STREAM_ID_PATTERN, description="A page's `next`; empty: "
                                                 "from now, `0-0`: from the oldest kept event.")] = "",
                     dial_job_id: Annotated[str, Query(max_length=200)] = "",
                     campaign_id: Annotated[str, Query(max_length=200)] = "",
                     wait_s: Annotated[float, Query(ge=0, le=30, allow_inf_nan=False)] = 10,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Dial job events after the stream id `after`, waiting up to wait_s for one (an empty page when
        none came: poll again with `next`). Async, so long polls hold no worker thread."""
        feed: DialEventFeed = request.app.state.event_feed
        if not after:
            after = await feed.latest_id()
        deadline = time.monotonic() + wait_s
        out: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            for entry_id, event in await feed.read(after, limit, remaining if wait_s else 0):
                after = entry_id
                if dial_job_id and event.get("dial_job_id") != dial_job_id:
                    continue
                if campaign_id and not await feed.in_campaign(campaign_id, event.get("dial_job_id", "")):
                    continue
                out.append({"id": entry_id, **event})
            if out or not wait_s or time.monotonic() >= deadline:
                return {"events": out, "next": after}

    return router
