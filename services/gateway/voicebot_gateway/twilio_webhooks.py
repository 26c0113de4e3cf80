"""Twilio HTTP webhooks: inbound voice, the dialer's outbound TwiML, status and AMD callbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from kombu.exceptions import KombuError
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from voicebot_core import answering_machine, metrics, telemetry, twiml
from voicebot_core.dial_jobs import DialJob
from voicebot_core.dial_status import enqueue_call_status, producer_for
from voicebot_core.logs import call_sid_var
from voicebot_core.tickets import TicketError, verify_outbound_url_token
from voicebot_core.vocabulary import is_machine
from voicebot_gateway.signed_requests import scope_peer, signed_form, twilio_url
from voicebot_gateway.state import GatewayState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

def _state(request: Request) -> GatewayState:
    return request.app.state.gateway


def _xml(body: str) -> Response:
    return Response(content=body, media_type="application/xml")


def _stream_url(request: Request, state: GatewayState, call_sid: str) -> str:
    """wss URL of our stream endpoint, on the same public host Twilio reached us on."""
    here = twilio_url(state.settings, str(request.url), request.headers, scope_peer(request.scope), websocket=True)
    parts = urlsplit(here)
    base_path = parts.path[: parts.path.index("/twilio/")] if "/twilio/" in parts.path else ""
    return urlunsplit((parts.scheme, parts.netloc, f"{base_path}/twilio/stream/{call_sid}", "", ""))


def _inbound_profile(request: Request, state: GatewayState, called: str) -> str:
    """The profile the number's voice URL names (`?agent_profile=NAME`, set by `voicebot numbers
    connect --profile`; Twilio signs the URL with its query, so it is as trusted as the form), else
    the profile the agent profiles file maps the called number to."""
    named = request.query_params.get("agent_profile", "")
    if named and named in state.profiles.names:
        return named
    if named:
        log.warning("voice URL names unknown agent profile %r: using the number's mapping", named)
    return state.profiles.for_number(called)


def _store_unavailable(state: GatewayState, endpoint: str, exc: BaseException) -> Response:
    """Redis is down or too slow to set the call up: the busy message and hang up, not a 5xx (which
    Twilio answers with its "application error" message) and not a stream no worker can be reserved for."""
    metrics.WEBHOOKS.labels(endpoint=endpoint, status="store_unavailable").inc()
    metrics.NO_CAPACITY.inc()
    log.error("Redis unavailable answering the %s webhook (%r): busy message", endpoint, exc)
    return _xml(twiml.say_and_hang_up(state.settings.gateway_busy_message))


def _require(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise HTTPException(400, f"missing form field {name}")
    return value


@router.post("/voice", summary="Inbound call webhook: answer with <Connect><Stream>")
async def inbound_voice(request: Request) -> Response:
    state = _state(request)
    form = await signed_form(request, state, "voice")
    call_sid = _require(form, "CallSid")
    call_sid_var.set(call_sid)
    if state.draining:
        # Twilio moves on to the number's fallback URL (another gateway) on a 5xx.
        metrics.WEBHOOKS.labels(endpoint="voice", status="draining").inc()
        raise HTTPException(503, "gateway is draining", headers={"Retry-After": "1"})
    called, caller = form.get("To", ""), form.get("From", "")
    profile = _inbound_profile(request, state, called)
    with telemetry.span("gateway.voice_webhook", kind=SpanKind.SERVER, parent=telemetry.request_parent(request.headers),
                        attrs={"call.sid": call_sid, "call.direction": "inbound", "agent.profile": profile}):
        try:
            async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
                await state.calls.upsert(
                    call_sid, direction="inbound", **{"from": caller, "to": called},
                    agent_profile=profile, status=form.get("CallStatus", "ringing"),
                )
                await state.calls.add_event(call_sid, "webhook", status=form.get("CallStatus", "ringing"))
        except (RedisError, TimeoutError) as exc:
            return _store_unavailable(state, "voice", exc)
        metrics.WEBHOOKS.labels(endpoint="voice", status="ok").inc()
        log.info("inbound call answered with agent profile %s", profile)
        # the traceparent parameter makes the worker's session a child of this span
        parameters = {"direction": "inbound", "from": caller, "to": called, "agent_profile": profile,
                      **telemetry.inject_context()}
    return _xml(twiml.connect_stream(_stream_url(request, state, call_sid), parameters))


@router.post("/outbound/{dial_job_id}", summary="TwiML for a dial job's answered call")
async def outbound_voice(request: Request, dial_job_id: str, attempt: int = 0, token: str = "") -> Response:
    state = _state(request)
    form = await signed_form(request, state, "outbound")
    call_sid = _require(form, "CallSid")
    call_sid_var.set(call_sid)
    try:
        verify_outbound_url_token(state.settings.stream_ticket_secret.get_secret_value(), token,
                                  dial_job_id, attempt)
    except TicketError as exc:
        metrics.REJECTED_SIGNATURES.labels(endpoint="outbound").inc()
        raise HTTPException(403, str(exc)) from None
    try:
        async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
            job = await state.dial_jobs.get(dial_job_id)
    except (RedisError, TimeoutError) as exc:
        return _store_unavailable(state, "outbound", exc)
    if job is None or job.is_terminal:
        log.warning("outbound call for unknown or finished dial job %s: hanging up", dial_job_id)
        return _xml(twiml.hang_up())
    profile_name = job.agent_profile or state.profiles.for_number(job.to)
    answered_by = form.get("AnsweredBy", "")
    await state.calls.upsert(
        call_sid, direction="outbound", **{"from": job.from_, "to": job.to},
        agent_profile=profile_name, dial_job_id=dial_job_id, attempt=attempt, answered_by=answered_by,
    )
    with telemetry.span("gateway.outbound_webhook", kind=SpanKind.SERVER,
                        parent={"traceparent": job.call_traceparent},
                        attrs={"call.sid": call_sid, "call.direction": "outbound", "dial_job.id": dial_job_id,
                               "dial_job.attempt": attempt, "agent.profile": profile_name}):
        if is_machine(answered_by):
            return _xml(await _machine_twiml(state, call_sid, job, answered_by))
        await state.calls.add_event(call_sid, "answered", dial_job_id=dial_job_id, answered_by=answered_by)
        metrics.WEBHOOKS.labels(endpoint="outbound", status="ok").inc()
        parameters = {"direction": "outbound", "from": job.from_, "to": job.to,
                      "agent_profile": profile_name, "dial_job_id": dial_job_id, **telemetry.inject_context()}
    return _xml(twiml.connect_stream(_stream_url(request, state, call_sid), parameters))


async def _machine_twiml(state: GatewayState, call_sid: str, job: DialJob, answered_by: str) -> str:
    """Synchronous AMD: the dial job's machine policy (voicemail or hang up), as TwiML."""
    message = answering_machine.voicemail_message(job, state.profiles)
    await state.calls.add_event(call_sid, "machine", answered_by=answered_by, policy=job.machine_detection,
                                voicemail_left=bool(message))
    await state.calls.upsert(call_sid, outcome="machine")
    metrics.CALL_OUTCOMES.labels(direction="outbound", outcome="machine").inc()
    return twiml.say_and_hang_up(message)


async def _forward_to_worker(state: GatewayState, call_sid: str, form: dict[str, str]) -> None:
    try:
        call = await state.calls.record(call_sid)
        if call is None or not call.worker_id:
            return
        address = await state.registry.address(call.worker_id)
    except RedisError as exc:  # the worker learns of the call's end from its stream closing too
        log.info("status callback not forwarded: Redis unavailable: %r", exc)
        return
    if not address:
        return
    worker_id = call.worker_id
    http_url = address.replace("ws://", "http://").replace("wss://", "https://")
    try:
        await state.workers_http.post(f"{http_url}/calls/{call_sid}/status", json=form)
    except httpx.HTTPError as exc:
        log.info("status callback not forwarded to worker %s: %s", worker_id, exc)


async def _callback(request: Request, kind: str) -> Response:
    state = _state(request)
    form = await signed_form(request, state, kind)
    call_sid = _require(form, "CallSid")
    call_sid_var.set(call_sid)
    dial_job_id = request.query_params.get("dial_job_id", "")
    attempt = int(request.query_params.get("attempt", "0") or 0)
    # Twilio sends a callback once: with Redis down (or restarting) it is applied when Redis is back,
    # in the background, rather than answered with a 5xx and lost.
    applying = asyncio.ensure_future(_apply_callback(state, call_sid, kind, form, dial_job_id, attempt))
    state.background.add(applying)
    applying.add_done_callback(state.background.discard)
    try:
        await asyncio.wait_for(asyncio.shield(applying), state.settings.gateway_redis_timeout_s)
    except TimeoutError:
        log.warning("Redis slow or unavailable: the %s callback is applied in the background", kind)
        metrics.WEBHOOKS.labels(endpoint=kind, status="deferred").inc()
        return Response(status_code=204)
    state.spawn(_forward_to_worker(state, call_sid, form))
    metrics.WEBHOOKS.labels(endpoint=kind, status="ok").inc()
    return Response(status_code=204)


async def _apply_callback(state: GatewayState, call_sid: str, kind: str, form: dict[str, str], dial_job_id: str,
                          attempt: int) -> None:
    """The callback into the call's record, then to the dialer's queue; each step again on a Redis (or broker)
    error, until gateway_callback_retry_s has passed. A step that timed out may have been applied: its retry
    can add a second event, and the dialer gets the status twice (as Twilio itself may send it)."""
    deadline = time.monotonic() + state.settings.gateway_callback_retry_s
    status = form.get("CallStatus", "")
    fields = {"status": status} if status else {}
    if form.get("AnsweredBy"):
        fields["answered_by"] = form["AnsweredBy"]
    recorded, delay = False, 0.25
    while True:
        try:
            if not recorded:
                await state.calls.add_event(call_sid, kind, status=status, answered_by=form.get("AnsweredBy", ""),
                                            duration=form.get("CallDuration", ""), dial_job_id=dial_job_id)
                if fields:
                    await state.calls.upsert(call_sid, **fields)
                recorded = True
            if dial_job_id:
                await asyncio.to_thread(enqueue_call_status, producer_for(state.settings), dial_job_id, attempt,
                                        kind, form)
            return
        except (RedisError, KombuError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                log.error("%s callback (status %s) lost: Redis unavailable for %.0f s: %r", kind, status,
                          state.settings.gateway_callback_retry_s, exc)
                return
            log.info("%s callback not applied yet (%r): again in %.2f s", kind, exc, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 5.0)


@router.post("/status", status_code=204, summary="Call status callback (signed)")
async def status_callback(request: Request) -> Response:
    return await _callback(request, "status")


@router.post("/amd", status_code=204, summary="Asynchronous answering-machine detection result (signed)")
async def amd_callback(request: Request) -> Response:
    return await _callback(request, "amd")
