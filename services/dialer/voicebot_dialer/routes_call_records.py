"""Calls of both directions as recorded by the gateway and the bot-worker (/v1/call-records): list, read,
follow live, hang up. Dial jobs (/v1/calls) are the dialer's view of outbound calls; these are the calls."""

# No `from __future__ import annotations`: FastAPI resolves Depends() of closures at runtime.

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from requests import RequestException
from twilio.base.exceptions import TwilioRestException

from voicebot_core.call_media import CALL_SID
from voicebot_core.calls import CallRecord
from voicebot_dialer.api_keys import Caller
from voicebot_dialer.auth import Auth
from voicebot_dialer.call_record_query import CallRecordFilter, CallRecordIndex
from voicebot_dialer.call_record_stream import CallRecordStream
from voicebot_dialer.call_record_views import is_live, record_view, sees_numbers
from voicebot_dialer.errors import responses
from voicebot_dialer.models import PHONE_SCHEMA
from voicebot_dialer.response_models import NUMBERS_MASKED, CallRecordDetail, CallRecordPage, CallRecordView
from voicebot_dialer.service import DialerService
from voicebot_dialer.views import MAX_CURSOR, e164_or_422, key_id

log = logging.getLogger(__name__)

TAG = "call records"
CallSid = Annotated[str, Path(pattern=CALL_SID.pattern, examples=["CA0123456789abcdef0123456789abcdef"],
                              description="The call's Twilio Call SID (`CA` and 32 hex digits).")]
SSE_RESPONSE = {200: {"description": "Server-sent events: `record` (a CallRecordView) and `transcript` "
                                     "(`{\"entries\": [...]}`) at once and whenever either changes, a `: keepalive` "
                                     "comment every 15 s when nothing changed, then `end` (`{\"call_sid\", "
                                     "\"outcome\", \"end_reason\"}`) once the call has ended, and the stream "
                                     "closes.",
                      "content": {"text/event-stream": {"schema": {"type": "string"}, "example":
                                  'event: record\ndata: {"call_sid":"CA0123456789abcdef0123456789abcdef",'
                                  '"live":true}\n\nevent: transcript\ndata: {"entries":[]}\n\n'}}}}
LIST_DESCRIPTION = ("Calls of both directions, newest first (by `created_at`); `next_cursor` pages on (null at the "
                    f"end). Numbers (`from`, `to`): {NUMBERS_MASKED} The `number` filter matches the whole number "
                    "either way.")
NO_BUFFERING = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx would hold events back


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


def build_router(dialer: DialerService, auth: Auth) -> APIRouter:
    router = APIRouter()
    index = CallRecordIndex(dialer.call_records, dialer.store)

    def found(call_sid: str) -> CallRecord:
        record = dialer.call_records.record(call_sid)
        if record is None:
            raise HTTPException(404, f"no call record {call_sid}")
        return record

    def view(record: CallRecord, caller: Caller) -> dict[str, Any]:
        campaign_id = dialer.store.campaign_ids([record.dial_job_id])[0] if record.dial_job_id else ""
        return record_view(record, campaign_id, sees_numbers(caller))

    @router.get("/v1/call-records", tags=[TAG], operation_id="listCallRecords", response_model=CallRecordPage,
                responses=responses(), description=LIST_DESCRIPTION, **auth.route("read"))
    def list_call_records(
            caller: Annotated[Caller, Depends(auth.require("read"))],
            live: Annotated[bool | None, Query(description="true: calls not ended; false: ended calls.")] = None,
            number: Annotated[str | None, Query(json_schema_extra=PHONE_SCHEMA,
                                                description="Calls from or to this number (matched on the whole "
                                                            "number, also for keys that see it masked).")] = None,
            dial_job_id: Annotated[str, Query(max_length=200)] = "",
            campaign_id: Annotated[str, Query(max_length=200, description="Calls of the campaign's dial jobs.")] = "",
            outcome: Annotated[str, Query(max_length=50)] = "",
            direction: Literal["inbound", "outbound"] | None = None,
            since: Annotated[float | None, Query(ge=0, allow_inf_nan=False,
                                                 description="Created at or after (Unix time).")] = None,
            until: Annotated[float | None, Query(ge=0, allow_inf_nan=False,
                                                 description="Created at or before (Unix time).")] = None,
            cursor: Annotated[int, Query(ge=0, le=MAX_CURSOR)] = 0,
            limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        where = CallRecordFilter(live=live, number="" if number is None else e164_or_422(number),
                                 dial_job_id=dial_job_id, campaign_id=campaign_id, outcome=outcome,
                                 direction=direction or "", since=since, until=until)
        page, next_cursor = index.page(where, cursor, limit)
        full = sees_numbers(caller)
        return {"items": [record_view(f.record, f.campaign_id, full) for f in page], "next_cursor": next_cursor}

    @router.get("/v1/call-records/{call_sid}", tags=[TAG], operation_id="getCallRecord",
                response_model=CallRecordDetail, responses=responses(404), **auth.route("read"))
    def get_call_record(call_sid: CallSid, caller: Annotated[Caller, Depends(auth.require("read"))],
                        response: Response) -> dict[str, Any]:
        """A call with its events and its transcript so far. The numbers are masked for `read` keys, as in
        listCallRecords."""
        record = found(call_sid)
        response.headers["Cache-Control"] = "no-store"  # callers' words: no shared cache keeps them
        return {**view(record, caller), "events": dialer.call_records.events(call_sid),
                "transcript": dialer.call_records.transcript(call_sid) or []}

    @router.get("/v1/call-records/{call_sid}/live", tags=[TAG], operation_id="followCallRecord",
                response_class=Response, responses={**SSE_RESPONSE, **responses(404)},  # errors stay JSON
                **auth.route("read"))
    async def follow_call_record(call_sid: CallSid, request: Request,
                                 caller: Annotated[Caller, Depends(auth.require("read"))]) -> EventStreamResponse:
        """Follow a call as it goes (`text/event-stream`, for EventSource and the like): its record and its
        transcript, polled twice a second, until it ends; an ended call gets its last record, transcript and
        `end` at once. The numbers are masked for `read` keys, as in listCallRecords."""
        stream = CallRecordStream(request.app.state.event_feed.redis, dialer.keys, sees_numbers(caller))
        if await stream.record(call_sid) is None:
            raise HTTPException(404, f"no call record {call_sid}")
        return EventStreamResponse(stream.events(call_sid, request.is_disconnected), headers=NO_BUFFERING)

    @router.post("/v1/call-records/{call_sid}/hangup", tags=[TAG], operation_id="hangUpCallRecord",
                 response_model=CallRecordView, responses=responses(403, 404, 409, 502), **auth.route("place"))
    def hang_up_call_record(call_sid: CallSid,
                            caller: Annotated[Caller, Depends(auth.require("place"))]) -> dict[str, Any]:
        """Hang up a live call of either direction through Twilio, and add a `hangup_requested` event (with
        the API key's id) to it. Answers the record as it is now: it shows the end once Twilio's status
        callback arrived. A dial job's call is better canceled with cancelCall, which also stops its retries."""
        record = found(call_sid)
        if not is_live(record):
            raise HTTPException(409, f"call {call_sid} has already ended ({record.status or record.outcome})")
        try:
            dialer.calls.hang_up(call_sid, before_answer=False)
        except TwilioRestException as exc:
            log.warning("Twilio refused to hang up: %s", exc.msg, extra={"call_sid": call_sid})
            raise HTTPException(502, f"Twilio refused to hang up call {call_sid}: {exc.msg}") from None
        except RequestException as exc:
            log.warning("Twilio unreachable to hang up: %r", exc, extra={"call_sid": call_sid})
            raise HTTPException(502, f"Twilio could not be reached to hang up call {call_sid}") from None
        dialer.call_events.add_event(call_sid, "hangup_requested", api_key_id=key_id(caller.key))
        return view(found(call_sid), caller)

    return router
