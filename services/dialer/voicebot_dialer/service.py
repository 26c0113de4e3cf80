"""The dialer's work, independent of Celery: dispatch due jobs, place calls, apply callbacks,
cancel, and reconcile placements a crash interrupted. Celery tasks are thin wrappers over this."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import requests
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from voicebot_core import telemetry
from voicebot_core.metrics import DIAL_PLACEMENTS, DIAL_QUEUE_DEPTH, DIAL_QUEUE_LAG
from voicebot_core.profiles import load_profiles
from voicebot_core.redis_client import connect_sync
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.twilio_rest import make_client
from voicebot_dialer import twilio_calls
from voicebot_dialer.capacity import CapacityGate
from voicebot_dialer.lifecycle import Lifecycle, due_within_window
from voicebot_dialer.ratelimit import RateLimiter, RateScope
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.store import JobStore, is_terminal

log = logging.getLogger(__name__)

# KEYS[1] schedule, KEYS[2] dispatched. ARGV: now, lease until, max in flight, batch.
# Expired leases go back to the schedule (their task was lost); then due jobs move to
# 'dispatched' while fewer than max are queued. One script, so two workers never claim one job.
_CLAIM_LUA = """
local now = tonumber(ARGV[1])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local room = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2])
if room <= 0 then return {} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, math.min(room, tonumber(ARGV[4])))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
end
return ids
"""

SendPlacement = Callable[[str, int, str], None]
MAX_TOKEN_WAIT_S = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def job_trace_context(job: dict[str, Any]) -> Iterator[None]:
    """Make the trace the dial job was created in current, so a task sent here carries it."""
    parent = telemetry.extract_context(telemetry.trace_carrier(job))
    token = otel_context.attach(parent) if parent is not None else None
    try:
        yield
    finally:
        if token is not None:
            otel_context.detach(token)
CAPACITY_RETRY_S = 0.5


class DialerService:
    def __init__(self, settings: DialerSettings, emit_webhook: Callable[[str, dict[str, Any]], None] | None = None,
                 twilio_client: Client | None = None) -> None:
        self.settings = settings
        self.keys = RedisKeys(prefix=settings.redis_prefix)
        self.redis = connect_sync(settings.redis_url)
        self.store = JobStore(self.redis, self.keys)
        # A call still unattached this long after placing has ended without us hearing of it.
        self.stale_call_s = settings.dialer_ring_timeout_s + 120.0
        self.capacity = CapacityGate(self.redis, self.keys, settings.dialer_require_capacity, self.stale_call_s)
        self.limiter = RateLimiter(self.redis, self.keys, settings.dialer_rate_window_s)
        self.lifecycle = Lifecycle(self.store, self.capacity, emit_webhook)
        self._twilio = twilio_client
        self._claim = self.redis.register_script(_CLAIM_LUA)

    @cached_property
    def twilio(self) -> Client:
        return self._twilio or make_client(self.settings.twilio_account_sid,
                                           self.settings.twilio_auth_token.get_secret_value(),
                                           self.settings.twilio_api_base_url)

    # dispatch: due jobs -> placement tasks
    def dispatch_due(self, send_placement: SendPlacement, batch: int = 100) -> int:
        if not self.capacity.has_worker_room():
            return 0  # nothing could be placed: leave jobs in the schedule instead of bouncing them
        now = time.time()
        ids = self._claim(keys=[self.keys.dial_schedule(), self.keys.dial_dispatched()],
                          args=[now, now + self.settings.dialer_dispatch_lease_s,
                                self.settings.dialer_max_inflight, batch])
        for job_id in ids:
            token = uuid.uuid4().hex
            with self.store.locked(job_id):
                job = self.store.get(job_id)
                if job is None or is_terminal(job) or job["state"] not in ("scheduled", "dispatched"):
                    self.redis.zrem(self.keys.dial_dispatched(), job_id)
                    continue
                self.store.update(job_id, state="dispatched", dispatch_token=token)
                if job["state"] == "dispatched":  # its lease ran out: the earlier task was lost
                    self.store.add_event(job_id, "redispatched", attempt=job["attempt"])
            with job_trace_context(job):
                send_placement(job_id, job["attempt"], token)
        return len(ids)

    def promote_waiting(self) -> int:
        """Move jobs of campaigns below their concurrency cap back into the schedule."""
        moved = 0
        for campaign_id in self.redis.smembers(self.keys.campaigns_waiting()):
            cap = int(self.redis.hget(self.keys.campaign(campaign_id), "max_concurrent_calls") or 0)
            room = cap - self.redis.zcard(self.keys.campaign_active(campaign_id)) if cap else 1_000
            if room > 0:
                now = time.time()
                for job_id, _ in self.redis.zpopmin(self.keys.campaign_waiting(campaign_id), room):
                    self.redis.zadd(self.keys.dial_schedule(), {job_id: now})
                    moved += 1
            if not self.redis.exists(self.keys.campaign_waiting(campaign_id)):
                self.redis.srem(self.keys.campaigns_waiting(), campaign_id)
                if self.redis.exists(self.keys.campaign_waiting(campaign_id)):  # one arrived meanwhile
                    self.redis.sadd(self.keys.campaigns_waiting(), campaign_id)
        return moved

    def update_queue_gauges(self) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for key in (self.keys.dial_schedule(), self.keys.dial_dispatched(), self.keys.dial_placing(),
                        self.keys.outbound_active()):
                pipe.zcard(key)
            pipe.zrange(self.keys.dial_schedule(), 0, 0, withscores=True)
            scheduled, dispatched, placing, active, oldest = pipe.execute()
        now = time.time()
        DIAL_QUEUE_LAG.set(max(0.0, now - oldest[0][1]) if oldest else 0.0)
        for state, value in (("scheduled", scheduled), ("dispatched", dispatched), ("placing", placing),
                             ("active", active)):
            DIAL_QUEUE_DEPTH.labels(state=state).set(value)

    # placement
    def _scopes(self, job: dict[str, Any], campaign: dict[str, str]) -> list[RateScope]:
        scopes = [RateScope("account", self.settings.dialer_account_cps),
                  RateScope(f"from:{job['from']}", self.settings.dialer_number_cps)]
        if campaign.get("calls_per_second"):
            scopes.append(RateScope(f"campaign:{job['campaign_id']}", float(campaign["calls_per_second"])))
        return scopes

    def _campaign(self, job: dict[str, Any]) -> dict[str, str]:
        return self.redis.hgetall(self.keys.campaign(job["campaign_id"])) if job.get("campaign_id") else {}

    def _current(self, job_id: str, attempt: int, token: str) -> dict[str, Any] | None:
        job = self.store.get(job_id)
        if job is None or job["state"] != "dispatched" or job["attempt"] != attempt \
                or job.get("dispatch_token") != token:
            return None
        return job

    def place(self, job_id: str, attempt: int, token: str) -> str:
        """Place one attempt of a dial job at most once. Returns what happened (for logs/tests)."""
        with self.store.locked(job_id):
            job = self._current(job_id, attempt, token)
            if job is None:
                return "stale"
            campaign = self._campaign(job)
            if campaign.get("status") == "canceled":
                self.lifecycle.finish(job, "canceled", "canceled")
                return "canceled"
            if campaign.get("status") == "paused":
                self.lifecycle.park(job)
                return "parked"
            if self.store.is_do_not_call(job["to"]):
                self.lifecycle.finish(job, "failed", "do-not-call")
                return "do-not-call"
            now = time.time()
            opens = due_within_window(job, now)
            if opens > now:
                self.lifecycle.reschedule(job, opens, "calling-window")
                return "outside-window"
            cap = int(campaign.get("max_concurrent_calls") or 0)
            room = self.capacity.reserve(job_id, now, job.get("campaign_id") or "", cap)
            if room == -1:
                self.lifecycle.wait_for_campaign_slot(job)
                return "campaign-cap"
            if room == 0:
                self.lifecycle.reschedule(job, now + CAPACITY_RETRY_S, "capacity")
                return "no-capacity"
            # Keep the lease while we wait for a rate token.
            self.redis.zadd(self.keys.dial_dispatched(), {job_id: now + self.settings.dialer_dispatch_lease_s})
        granted, value = self.limiter.take(f"{job_id}:{attempt}", self._scopes(job, campaign), MAX_TOKEN_WAIT_S)
        with self.store.locked(job_id):
            job = self._current(job_id, attempt, token)
            if job is None:  # canceled (or re-dispatched after a lost lease) while we waited
                latest = self.store.get(job_id) or {}
                if latest.get("state") not in ("dispatched", "placing", "ringing", "in-progress"):
                    self.capacity.release(job_id, latest.get("campaign_id") or "")
                return "stale"
            if not granted:
                self.lifecycle.reschedule(job, time.time() + value, "rate")
                return "rate-wait"
            # Recorded before the REST call: a crash from here on is reconciled, never redialed.
            self.lifecycle._set(job, state="placing", placing_at=value)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self.keys.dial_placing(), {job_id: time.time()})
                pipe.zrem(self.keys.dial_dispatched(), job_id)
                pipe.execute()
        return self._create_call(job, attempt, granted_at=value)

    def _create_call(self, job: dict[str, Any], attempt: int, granted_at: float) -> str:
        job_id = job["id"]
        started = time.monotonic()
        try:
            call_sid = self._twilio_create(job, attempt)
        except TwilioRestException as exc:
            DIAL_PLACEMENTS.labels(result="refused").inc()
            with self.store.locked(job_id):
                job = self.store.get(job_id) or job
                if job["attempt"] == attempt and job["state"] == "placing":
                    self.lifecycle.event(job, "placement_refused", code=exc.code, status=exc.status,
                                         error=str(exc.msg)[:300])
                    self.lifecycle.end_attempt(job, "placement-error", error=str(exc.msg)[:300])
            return "refused"
        except requests.RequestException as exc:
            if not _never_sent(exc):
                # Twilio may have the call: leave the job 'placing' for the callbacks or the reconciler.
                DIAL_PLACEMENTS.labels(result="uncertain").inc()
                log.warning("placing dial job %s: %s; reconciling later", job_id, type(exc).__name__)
                return "uncertain"
            # No connection was made, so nothing reached Twilio: ending the attempt is safe.
            DIAL_PLACEMENTS.labels(result="unreachable").inc()
            with self.store.locked(job_id):
                job = self.store.get(job_id) or job
                if job["attempt"] == attempt and job["state"] == "placing":
                    self.lifecycle.end_attempt(job, "placement-error", error="Twilio API unreachable")
            return "unreachable"
        DIAL_PLACEMENTS.labels(result="placed").inc()
        hang_up = False
        with self.store.locked(job_id):
            job = self.store.get(job_id) or job
            if job["attempt"] != attempt:
                return "placed"
            self.redis.zrem(self.keys.dial_placing(), job_id)
            self.redis.set(self.keys.dial_job_by_call(call_sid), job_id, ex=30 * 24 * 3600)
            if not job.get("call_sid"):
                self.lifecycle._set(job, call_sid=call_sid)
            if job["state"] == "placing":
                self.lifecycle._set(job, state="ringing")
            self.lifecycle.event(job, "placed", call_sid=call_sid, granted_at=granted_at, placed_by=worker_name(),
                                 create_ms=round((time.monotonic() - started) * 1000, 1))
            hang_up = job.get("cancel_requested") == "1"
        if hang_up:
            twilio_calls.hang_up(self.twilio, call_sid, before_answer=True)
        return "placed"

    def _twilio_create(self, job: dict[str, Any], attempt: int) -> str:
        with telemetry.span("twilio.create_call", kind=SpanKind.CLIENT,
                            attrs={"dial_job.id": job["id"], "dial_job.attempt": attempt}) as create_span:
            # Stored before the REST call: Twilio may fetch the outbound TwiML before create returns,
            # and the gateway's webhook span takes this as its parent.
            traceparent = telemetry.current_traceparent()
            if traceparent:
                self.redis.hset(self.keys.dial_job(job["id"]), "call_traceparent", traceparent)
            call_sid = twilio_calls.place(self.twilio, self.settings, job, attempt)
            create_span.set_attribute("call.sid", call_sid)
            return call_sid

    # callbacks
    def handle_callback(self, job_id: str, attempt: int, kind: str, params: dict[str, str]) -> str:
        fingerprint = "|".join((kind, str(attempt), params.get("CallSid", ""), params.get("CallStatus", ""),
                                params.get("AnsweredBy", "")))
        seen_key = self.keys.dial_job_seen(job_id)
        if not self.redis.sadd(seen_key, fingerprint):
            return "duplicate"
        self.redis.expire(seen_key, 30 * 24 * 3600)
        try:
            with self.store.locked(job_id):
                job = self.store.get(job_id)
                if job is None:
                    return "unknown-job"
                action = self.lifecycle.apply_callback(job, int(attempt), kind, params)
        except Exception:
            self.redis.srem(seen_key, fingerprint)  # not applied: a redelivery must not look repeated
            raise
        if action and params.get("CallSid"):
            self._answering_machine(job, params["CallSid"], action)
        return action or "applied"

    def _answering_machine(self, job: dict[str, Any], call_sid: str, action: str) -> None:
        message = ""
        if action == "voicemail":
            try:
                profiles = load_profiles(self.settings.agent_profiles_path)
                message = profiles.get(job.get("agent_profile") or None, job.get("overrides") or {}).voicemail_message
            except (OSError, KeyError, ValueError):
                log.warning("no voicemail message for dial job %s: hanging up instead", job["id"])
            twilio_calls.leave_voicemail(self.twilio, call_sid, message)
        else:
            twilio_calls.hang_up(self.twilio, call_sid, before_answer=False)
        self.store.add_event(job["id"], "machine_" + ("voicemail_left" if message else "hung_up"),
                             attempt=job["attempt"], call_sid=call_sid)

    # cancel
    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a job; a live call is hung up. Returns the job (None when unknown)."""
        with self.store.locked(job_id):
            job = self.store.get(job_id)
            if job is None or is_terminal(job):
                return job
            call_sid, state = job.get("call_sid", ""), job["state"]
            self.lifecycle._set(job, cancel_requested="1")
            if job.get("parked") == "1" and job.get("campaign_id"):
                self.redis.srem(self.keys.campaign_parked(job["campaign_id"]), job_id)
            if state == "placing" and not call_sid:
                return job  # the placing worker hangs up as soon as Twilio names the call
            self.lifecycle.finish(job, "canceled", "canceled")
        if call_sid:
            twilio_calls.hang_up(self.twilio, call_sid, before_answer=state != "in-progress")
        return job

    # crash recovery
    def reconcile_stuck_placements(self) -> int:
        """Jobs left in 'placing' by a dead worker: adopt the call if Twilio has it, else the
        attempt is over (never re-dial the same attempt)."""
        cutoff = time.time() - self.settings.dialer_placing_timeout_s
        fixed = 0
        for job_id in self.redis.zrangebyscore(self.keys.dial_placing(), "-inf", cutoff):
            if not self.redis.zrem(self.keys.dial_placing(), job_id):
                continue  # another worker took it
            found = self._find_placed_call(job_id)
            with self.store.locked(job_id):
                job = self.store.get(job_id)
                if job is None or job["state"] != "placing" or job.get("call_sid"):
                    continue
                if found:
                    sid, status = found
                    self.lifecycle.event(job, "placement_reconciled", call_sid=sid)
                    self.lifecycle.apply_callback(job, job["attempt"], "status",
                                                  {"CallSid": sid, "CallStatus": status})
                else:
                    self.lifecycle.event(job, "placement_lost")
                    self.lifecycle.end_attempt(job, "placement-lost")
                fixed += 1
        return fixed

    def reconcile_silent_calls(self, batch: int = 20) -> int:
        """Calls we placed but heard nothing final about for a long time (callbacks lost): ask
        Twilio for the call's status and apply it as if the callback had arrived."""
        stale_before = time.time() - self.stale_call_s
        applied = 0
        for job_id in self.redis.zrangebyscore(self.keys.outbound_active(), "-inf", stale_before, 0, batch):
            # Check again later unless this pass ends it; also keeps other workers off it.
            self.redis.zadd(self.keys.outbound_active(), {job_id: time.time()}, xx=True)
            job = self.store.get(job_id)
            if job is None or is_terminal(job) or not job.get("call_sid"):
                if job is None or is_terminal(job):
                    self.capacity.release(job_id, (job or {}).get("campaign_id") or "")
                continue
            try:
                call = self.twilio.calls(job["call_sid"]).fetch()
            except TwilioRestException as exc:
                log.warning("cannot fetch call of dial job %s: %s", job_id, exc.msg)
                continue
            if call.status in ("completed", "busy", "no-answer", "failed", "canceled"):
                params = {"CallSid": call.sid, "CallStatus": call.status, "CallDuration": str(call.duration or ""),
                          "AnsweredBy": call.answered_by or ""}
                self.handle_callback(job_id, job["attempt"], "status", params)
                applied += 1
        return applied

    def _find_placed_call(self, job_id: str) -> tuple[str, str] | None:
        job = self.store.get(job_id)
        if not job or not job.get("placing_at"):
            return None
        since = float(job["placing_at"]) - 5
        try:
            calls = self.twilio.calls.list(to=job["to"], from_=job["from"], limit=50)
        except Exception:  # the API (or emulator) cannot list: treat as not placed
            log.warning("could not list calls to reconcile dial job %s", job_id, exc_info=True)
            return None
        # Twilio's call resource does not echo our Url: match number pair and creation time.
        for call in calls:
            created = call.date_created.timestamp() if call.date_created else 0
            if since <= created <= since + 5 + self.settings.dialer_placing_timeout_s:
                return call.sid, call.status
        return None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc)
