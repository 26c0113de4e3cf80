"""WS /twilio/stream/{call_sid}: hold Twilio's side of the stream, relay it to a bot-worker.

The gateway reads `connected` and `start`, reserves a worker slot, pins the call to that
worker and relays every message unchanged in both directions. Twilio's side stays with the
gateway, so when a worker dies mid-call (abnormal close) the stream is re-attached to another
worker, which resumes from the conversation checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from opentelemetry.trace import SpanKind
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from voicebot_core import metrics, telemetry, twiml
from voicebot_core.logs import call_sid_var
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureError, public_url
from voicebot_core.tickets import TICKET_HEADER, issue_ticket
from voicebot_core.twilio_protocol import FrameError, StreamStart, parse_frame, parse_start
from voicebot_core.vocabulary import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_POLICY
from voicebot_gateway.state import GatewayState

log = logging.getLogger(__name__)
router = APIRouter(tags=["twilio"])

START_TIMEOUT_S = 10.0
# per-frame counters: resolve the labelled children once, not 50 times a second per call
RELAYED_INBOUND = metrics.FRAMES_RELAYED.labels(direction="inbound")
RELAYED_OUTBOUND = metrics.FRAMES_RELAYED.labels(direction="outbound")


class StreamClosed(Exception):
    """Twilio's side ended (stop, hang-up): no re-attach."""


class WorkerLost(Exception):
    """The worker's side broke while Twilio's is still open: re-attach elsewhere."""


async def _check_upgrade_signature(ws: WebSocket, state: GatewayState) -> str | None:
    if not state.settings.gateway_validate_signatures:
        return None
    url = public_url(
        request_url=str(ws.url), headers=ws.headers,
        public_base_url=state.settings.gateway_public_base_url or None, websocket=True,
    )
    try:
        state.signatures.check(url, {}, ws.headers.get(SIGNATURE_HEADER))
    except SignatureError as exc:
        return str(exc)
    return None


async def _read_start(ws: WebSocket) -> tuple[str, str, StreamStart]:
    """Returns the raw `connected` and `start` texts (forwarded as-is) and the parsed start."""
    connected_text = await ws.receive_text()
    frame = parse_frame(connected_text, started=False)
    if frame.event != "connected":
        raise FrameError(f"expected connected, got {frame.event}")
    start_text = await ws.receive_text()
    frame = parse_frame(start_text, started=False)
    if frame.event != "start":
        raise FrameError(f"expected start, got {frame.event}")
    return connected_text, start_text, parse_start(frame)


async def _open_worker(state: GatewayState, call_sid: str, preferred: str,
                       skip: set[str]) -> tuple[str, ClientConnection] | None:
    """Reserve a slot and connect; a worker that refuses (full, draining, gone) is skipped."""
    for _ in range(state.settings.gateway_worker_attempts):
        reservation = await state.registry.reserve(call_sid, preferred_worker_id=preferred, skip=skip)
        if reservation is None:
            return None
        ticket = issue_ticket(state.settings.stream_ticket_secret.get_secret_value(), call_sid,
                              reservation.worker_id)
        url = f"{reservation.address}/streams/{call_sid}"
        try:
            conn = await asyncio.wait_for(
                connect(url, max_size=2**20, open_timeout=state.settings.gateway_worker_connect_timeout_s,
                        ping_interval=10, ping_timeout=10, additional_headers={TICKET_HEADER: ticket}),
                timeout=state.settings.gateway_worker_connect_timeout_s + 1,
            )
            return reservation.worker_id, conn
        except (OSError, TimeoutError, InvalidStatus, WebSocketException) as exc:
            log.warning("worker %s refused call: %s", reservation.worker_id, exc)
            await state.registry.release(reservation.worker_id, call_sid)
            skip.add(reservation.worker_id)
            preferred = ""
    return None


async def say_busy(state: GatewayState, call_sid: str) -> None:
    """No worker free: Twilio speaks the busy message and hangs up (the stream ends)."""
    metrics.NO_CAPACITY.inc()
    await state.calls.add_event(call_sid, "no-capacity")
    await state.calls.upsert(call_sid, outcome="rejected", outcome_reason="no free worker")
    try:
        busy = twiml.say_and_hang_up(state.settings.gateway_busy_message)
        await asyncio.to_thread(state.twilio.calls(call_sid).update, twiml=busy)
    except Exception as exc:  # REST down: closing the stream still ends the call cleanly
        log.error("could not play the busy message: %s", exc)


async def _pump_twilio_to_worker(ws: WebSocket, worker: ClientConnection) -> None:
    while True:
        try:
            text = await ws.receive_text()
        except WebSocketDisconnect:
            raise StreamClosed("twilio disconnected") from None
        frame = parse_frame(text, started=True)  # FrameError ends this call only
        try:
            await worker.send(text)
        except ConnectionClosed as exc:
            metrics.FRAMES_DROPPED.labels(reason="no_peer").inc()
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_NORMAL:
                raise StreamClosed("worker ended the call") from None
            raise WorkerLost(str(exc)) from None
        RELAYED_INBOUND.inc()
        if frame.event == "stop":
            raise StreamClosed("twilio sent stop")


async def _pump_worker_to_twilio(ws: WebSocket, worker: ClientConnection) -> None:
    async for message in worker:
        if isinstance(message, bytes):
            message = message.decode()
        await ws.send_text(message)
        RELAYED_OUTBOUND.inc()


async def _relay(ws: WebSocket, worker: ClientConnection) -> bool:
    """Relay until one side ends. True when the worker vanished and Twilio is still there."""
    up = asyncio.create_task(_pump_twilio_to_worker(ws, worker))
    down = asyncio.create_task(_pump_worker_to_twilio(ws, worker))
    done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if up in done:
        exc = up.exception()
        if isinstance(exc, StreamClosed):
            await worker.close()
            return False
        if isinstance(exc, WorkerLost):
            log.warning("worker stream broke: %s", exc)
            return True
        if exc is not None:
            raise exc
    # the worker side ended first
    exc = down.exception() if down in done else None
    code = worker.close_code
    if exc is None and code == CLOSE_NORMAL:
        return False
    log.warning("worker stream ended abnormally (code %s, %s)", code, exc)
    return True


@router.websocket("/twilio/stream/{call_sid}")
async def twilio_stream(ws: WebSocket, call_sid: str) -> None:
    state: GatewayState = ws.app.state.gateway
    call_sid_var.set(call_sid)
    reason = await _check_upgrade_signature(ws, state)
    if reason:
        metrics.REJECTED_SIGNATURES.labels(endpoint="stream").inc()
        log.warning("rejected stream upgrade: %s", reason)
        await ws.close(code=CLOSE_POLICY, reason=reason[:120])
        return
    await ws.accept()
    state.stream_opened()
    metrics.STREAMS_ACTIVE.inc()
    started_at = time.monotonic()
    worker_id = ""
    try:
        try:
            connected_text, start_text, start = await asyncio.wait_for(_read_start(ws), START_TIMEOUT_S)
        except (FrameError, TimeoutError) as exc:
            raise FrameError(f"stream did not start: {exc}") from None
        if start.call_sid != call_sid:
            raise FrameError(f"start.callSid {start.call_sid} does not match the stream URL")
        with telemetry.span("gateway.stream", kind=SpanKind.SERVER, parent=start.custom_parameters,
                            attrs={"call.sid": call_sid, "call.direction": start.custom_parameters.get("direction")}):
            call = await state.calls.record(call_sid)
            preferred = call.worker_id if call else ""
            skip: set[str] = set()
            attached_once = False
            while True:
                opened = await _open_worker(state, call_sid, preferred, skip)
                if opened is None:
                    if not attached_once:
                        await say_busy(state, call_sid)
                    else:
                        await state.calls.add_event(call_sid, "failover-failed")
                    await ws.close(code=CLOSE_NORMAL)
                    return
                worker_id, worker = opened
                await state.calls.upsert(call_sid, worker_id=worker_id, stream_sid=start.stream_sid,
                                         status="in-progress")
                await state.calls.add_event(call_sid, "reattached" if attached_once else "stream-attached",
                                            worker_id=worker_id)
                if not attached_once:
                    metrics.CALL_SETUP.observe(time.monotonic() - started_at)
                log.info("call attached to worker %s", worker_id)
                await worker.send(connected_text)
                await worker.send(start_text)
                attached_once = True
                try:
                    worker_lost = await _relay(ws, worker)
                finally:
                    await worker.close()
                    await state.registry.release(worker_id, call_sid)
                if not worker_lost:
                    break
                skip.add(worker_id)
                preferred = ""
            await ws.close(code=CLOSE_NORMAL)
    except FrameError as exc:
        metrics.STREAM_ERRORS.labels(reason="bad_frame").inc()
        metrics.FRAMES_DROPPED.labels(reason="malformed").inc()
        log.warning("closing stream: %s", exc)
        await state.calls.add_event(call_sid, "stream-error", reason=str(exc))
        with contextlib.suppress(Exception):
            await ws.close(code=CLOSE_POLICY, reason=str(exc)[:120])
    except (WebSocketDisconnect, ConnectionClosed):
        pass
    except Exception:
        metrics.STREAM_ERRORS.labels(reason="internal").inc()
        log.exception("stream relay failed")
        with contextlib.suppress(Exception):
            await ws.close(code=CLOSE_INTERNAL_ERROR)
    finally:
        try:
            if worker_id:
                await state.registry.release(worker_id, call_sid)
            await state.calls.add_event(call_sid, "stream-ended", worker_id=worker_id)
        except Exception as exc:  # Redis trouble must not leave the stream counted (drain waits on it)
            log.error("could not record the end of the stream: %s", exc)
        finally:
            metrics.STREAMS_ACTIVE.dec()
            state.stream_closed()
