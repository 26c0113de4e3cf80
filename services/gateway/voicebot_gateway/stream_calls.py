"""The call behind a media stream, as both relays run it; they differ only in how frames move.

`StreamCall.run` is one stream's life: wait for `connected`/`start` and check the call SID, reserve
a worker slot and connect with a ticket (skipping workers that refuse the upgrade or close with 1013),
pin the call to the worker, relay until one side ends, re-attach to another worker when the worker's
side broke, the busy message whenever no worker takes the call, the call events and metrics, and
the drain accounting. A relay subclasses it with its way of reading the start, connecting, relaying
and closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from voicebot_core import metrics, telemetry, twiml
from voicebot_core.signatures import SignatureError
from voicebot_core.tickets import issue_ticket
from voicebot_core.twilio_protocol import FrameError, StreamStart
from voicebot_core.vocabulary import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TRY_AGAIN
from voicebot_gateway.signed_requests import twilio_url
from voicebot_gateway.state import GatewayState

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
# per-frame counters: resolve the labelled children once, not 50 times a second per call
RELAYED_INBOUND = metrics.FRAMES_RELAYED.labels(direction="inbound")
RELAYED_OUTBOUND = metrics.FRAMES_RELAYED.labels(direction="outbound")

W = TypeVar("W")  # a relay's connection to a worker


class RelayEnd(Enum):
    """How a worker's part of the call ended (`StreamCall.relay`)."""

    DONE = "done"  # the call is over: Twilio's side ended, or the worker closed normally
    LOST = "lost"  # the worker's side broke (abnormal close, reset, silence) while Twilio's is open: re-attach
    REFUSED = "refused"  # the worker closed with 1013 (full, draining): it never took the call, try another


def worker_closed(code: int | None) -> RelayEnd:
    """How the worker closing its stream with `code` (None: no close frame) ends its part."""
    if code == CLOSE_NORMAL:
        return RelayEnd.DONE
    return RelayEnd.REFUSED if code == CLOSE_TRY_AGAIN else RelayEnd.LOST


def refuse_upgrade(state: GatewayState, request_url: str, headers: Mapping[str, str],
                   signature: str | None, peer: str | None) -> str | None:
    """Why the stream's upgrade request is refused (its Twilio signature), or None to accept it.
    `peer`: the connection's peer address (X-Forwarded-* count only from a trusted proxy)."""
    if not state.settings.gateway_validate_signatures:
        return None
    url = twilio_url(state.settings, request_url, headers, peer, websocket=True)
    try:
        state.signatures.check(url, {}, signature)
    except SignatureError as exc:
        metrics.REJECTED_SIGNATURES.labels(endpoint="stream").inc()
        log.warning("rejected stream upgrade: %s", exc)
        return str(exc)
    return None


async def say_busy(state: GatewayState, call_sid: str, mid_call: bool = False) -> None:
    """No worker takes the call: Twilio speaks the busy message and hangs up (the stream ends).
    `mid_call`: a worker had the call and broke, and no other one takes it over."""
    metrics.NO_CAPACITY.inc()
    try:  # the record is best effort: with Redis down the caller still hears the message
        async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
            await state.calls.add_event(call_sid, "no-capacity")
            if mid_call:
                await state.calls.upsert(call_sid, outcome="failed", outcome_reason="no free worker to re-attach to")
            else:
                await state.calls.upsert(call_sid, outcome="rejected", outcome_reason="no free worker")
    except (RedisError, TimeoutError) as exc:
        log.error("could not record the busy message in Redis: %r", exc)
    try:
        busy = twiml.say_and_hang_up(state.settings.gateway_busy_message)
        await asyncio.to_thread(state.twilio.calls(call_sid).update, twiml=busy)
    except Exception as exc:  # REST down: closing the stream still ends the call cleanly
        log.error("could not play the busy message: %s", exc)


async def _best_effort(state: GatewayState, what: str, write: Coroutine[Any, Any, Any]) -> None:
    """A record write the call goes on without: Redis down or slow (a restart) is logged, not raised."""
    try:
        async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
            await write
    except (RedisError, TimeoutError) as exc:
        log.error("could not record %s in Redis: %r", what, exc)


class StreamCall(ABC, Generic[W]):
    """One media stream's call. A relay supplies the hooks below; `run` is the rest."""

    refused: tuple[type[Exception], ...]  # what `connect` raises when a worker will not take the call
    gone: tuple[type[Exception], ...]  # what Twilio hanging up raises: nothing left to do

    def __init__(self, state: GatewayState, call_sid: str) -> None:
        self.state = state
        self.call_sid = call_sid
        self.worker_id = ""  # the worker last attached: its slot is released however the stream ends
        self.attempts_left = state.settings.gateway_worker_attempts  # workers tried for this (re-)attach

    @abstractmethod
    async def read_start(self) -> StreamStart:
        """`connected` and `start` from Twilio (FrameError when they are not that)."""

    @abstractmethod
    async def connect(self, address: str, ticket: str) -> W:
        """The stream to a worker (raises one of `refused` when the worker refuses)."""

    @abstractmethod
    async def relay(self, worker: W) -> RelayEnd:
        """Send the worker `connected`, `start` and on; relay until one side ends."""

    @abstractmethod
    async def detach(self, worker: W) -> None:
        """Close the worker's stream after `relay`, however it ended."""

    @abstractmethod
    async def close(self, code: int, reason: str = "") -> None:
        """Close Twilio's side."""

    def ended(self) -> None:
        """The stream is over and accounted for."""

    async def run(self) -> None:
        state, call_sid = self.state, self.call_sid
        state.stream_opened(call_sid)
        metrics.STREAMS_ACTIVE.inc()
        started_at = time.monotonic()
        try:
            try:
                start = await asyncio.wait_for(self.read_start(), START_TIMEOUT_S)
            except (FrameError, TimeoutError) as exc:
                raise FrameError(f"stream did not start: {exc}") from None
            if start.call_sid != call_sid:
                raise FrameError(f"start.callSid {start.call_sid} does not match the stream URL")
            with telemetry.span("gateway.stream", kind=SpanKind.SERVER, parent=start.custom_parameters,
                                attrs={"call.sid": call_sid,
                                       "call.direction": start.custom_parameters.get("direction")}):
                try:  # the worker the call was on (a stream started again); Redis down: the reservation says
                    async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
                        call = await state.calls.record(call_sid)
                except (RedisError, TimeoutError):
                    call = None
                await self._attach_and_relay(start, call.worker_id if call else "", started_at)
        except FrameError as exc:
            metrics.STREAM_ERRORS.labels(reason="bad_frame").inc()
            metrics.FRAMES_DROPPED.labels(reason="malformed").inc()
            log.warning("closing stream: %s", exc)
            await state.calls.add_event(call_sid, "stream-error", reason=str(exc))
            with contextlib.suppress(Exception):
                await self.close(CLOSE_POLICY, str(exc))
        except self.gone:
            pass
        except Exception:
            metrics.STREAM_ERRORS.labels(reason="internal").inc()
            log.exception("stream relay failed")
            with contextlib.suppress(Exception):
                await self.close(CLOSE_INTERNAL_ERROR)
        finally:
            try:
                if self.worker_id:
                    await state.registry.release(self.worker_id, call_sid)
                await state.calls.add_event(call_sid, "stream-ended", worker_id=self.worker_id)
            except Exception as exc:  # Redis trouble must not leave the stream counted (drain waits on it)
                log.error("could not record the end of the stream: %s", exc)
            finally:
                metrics.STREAMS_ACTIVE.dec()
                state.stream_closed(call_sid)
                self.ended()

    async def _attach_and_relay(self, start: StreamStart, preferred: str, started_at: float) -> None:
        """Relay the call through workers until it ends; the busy message (once) when none takes it."""
        state, call_sid = self.state, self.call_sid
        # an outbound call may take the slot the dialer holds for it; an inbound call may not
        own_hold = start.custom_parameters.get("dial_job_id", "")
        skip: set[str] = set()
        lost_once = False  # a worker had the call and broke: later attaches are re-attaches
        setup_timed = False
        while True:
            opened = await self._open_worker(preferred, skip, own_hold)
            if opened is None:
                if lost_once:
                    await _best_effort(state, "the failed failover", state.calls.add_event(call_sid, "failover-failed"))
                await say_busy(state, call_sid, mid_call=lost_once)
                await self.close(CLOSE_NORMAL)
                return
            worker_id, worker = opened
            self.worker_id = worker_id
            await _best_effort(state, "the attach", state.calls.upsert(
                call_sid, worker_id=worker_id, stream_sid=start.stream_sid, status="in-progress"))
            await _best_effort(state, "the attach", state.calls.add_event(
                call_sid, "reattached" if lost_once else "stream-attached", worker_id=worker_id))
            if not setup_timed:
                metrics.CALL_SETUP.observe(time.monotonic() - started_at)
                setup_timed = True
            log.info("call attached to worker %s", worker_id)
            try:
                ended = await self.relay(worker)
            finally:
                await self.detach(worker)
                # the worker frees its slot too; a Redis blip here must not turn the call's end into an error
                await _best_effort(state, "the slot's release", state.registry.release(worker_id, call_sid))
            if ended is RelayEnd.DONE:
                await self.close(CLOSE_NORMAL)
                return
            skip.add(worker_id)
            preferred = ""
            if ended is RelayEnd.REFUSED:  # counts against this attach's attempts, as a refused upgrade
                log.warning("worker %s closed the stream with 1013 (full or draining)", worker_id)
                await _best_effort(state, "the refusal", state.calls.add_event(call_sid, "worker-refused",
                                                                               worker_id=worker_id))
            else:
                lost_once = True
                self.attempts_left = state.settings.gateway_worker_attempts  # a fresh round for the re-attach

    async def _open_worker(self, preferred: str, skip: set[str], own_hold: str) -> tuple[str, W] | None:
        """Reserve a slot and connect, while attempts are left; a worker that refuses (full, draining,
        gone) is skipped."""
        state, call_sid = self.state, self.call_sid
        while self.attempts_left > 0:
            self.attempts_left -= 1
            try:
                async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
                    reservation = await state.registry.reserve(call_sid, preferred_worker_id=preferred, skip=skip,
                                                               dial_job_id=own_hold)
            except (RedisError, TimeoutError) as exc:
                log.error("Redis unavailable reserving a worker (%r): busy message", exc)
                return None
            if reservation is None:
                return None
            ticket = issue_ticket(state.settings.stream_ticket_secret.get_secret_value(), call_sid,
                                  reservation.worker_id)
            try:
                return reservation.worker_id, await self.connect(reservation.address, ticket)
            except self.refused as exc:
                log.warning("worker %s refused call: %s", reservation.worker_id, exc)
                await _best_effort(state, "the slot's release", state.registry.release(reservation.worker_id,
                                                                                        call_sid))
                skip.add(reservation.worker_id)
                preferred = ""
        return None
