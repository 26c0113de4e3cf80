"""Placement: one attempt of a dial job becomes at most one Twilio call.

Under the job's lock the attempt is checked (dispatch token, campaign status, do-not-call,
calling window, capacity), a connection to Twilio is opened and a rate token awaited outside it,
then the job is marked 'placing' before the REST call, so a worker killed mid-call leaves it for
the reconciler. The request is written only under a token at most DIALER_RATE_SEND_WITHIN_S old
(`fresh_token`), else not at all (the same attempt later). A create that may have reached Twilio
without an answer (`create_errors`) stays 'placing' too: only the reconciler's look-up may end such
an attempt; a 429 waits out Retry-After and tries the same attempt.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import requests
from opentelemetry.trace import SpanKind
from twilio.base.exceptions import TwilioRestException

from voicebot_core import telemetry
from voicebot_core.dial_jobs import is_terminal
from voicebot_core.metrics import DIAL_PLACEMENTS
from voicebot_dialer.create_errors import classify
from voicebot_dialer.fresh_token import FreshToken, NoFreshToken
from voicebot_dialer.lifecycle import due_within_window
from voicebot_dialer.parts import DialerParts
from voicebot_dialer.ratelimit import Grant, RateLimiter, RateScope
from voicebot_dialer.twilio_http import TwilioRateLimited

log = logging.getLogger(__name__)

MAX_TOKEN_WAIT_S = 5.0
CAPACITY_RETRY_S = 0.5
# 429s on create: at most this many per job, each waiting at most this long, else the job fails 'rate-limited'.
MAX_RATE_LIMITED = 5
MAX_RETRY_AFTER_S = 600.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Placement:
    def __init__(self, parts: DialerParts, limiter: RateLimiter) -> None:
        self._parts = parts
        self._limiter = limiter

    def place(self, job_id: str, attempt: int, token: str) -> str:
        """Place one attempt of a dial job at most once. Returns what happened (for logs/tests)."""
        jobs, lifecycle = self._parts.jobs, self._parts.lifecycle
        with jobs.locked(job_id):
            job = self._current(job_id, attempt, token)
            if job is None:
                return "stale"
            campaign = self._parts.campaigns.get(job["campaign_id"]) if job.get("campaign_id") else {}
            held = self._hold_back(job, campaign)
            if held:
                return held
            # Keep the lease while we wait for a rate token.
            self._parts.queues.extend_lease(job_id, time.time() + self._parts.settings.dialer_dispatch_lease_s)
        self._parts.calls.warm_up()  # a handshake after the grant would only age it
        got = self._limiter.take(f"{job_id}:{attempt}", self._scopes(job, campaign), MAX_TOKEN_WAIT_S)
        with jobs.locked(job_id):
            job = self._current(job_id, attempt, token)
            if job is None:  # canceled (or re-dispatched after a lost lease) while we waited
                latest = jobs.get(job_id) or {}
                if latest.get("state") not in ("dispatched", "placing", "ringing", "in-progress"):
                    self._parts.capacity.release(job_id, latest.get("campaign_id") or "")
                return "stale"
            if not isinstance(got, Grant):
                lifecycle.reschedule(job, time.time() + got, "rate")
                return "rate-wait"
            lifecycle.mark_placing(job, granted_at=got.at)
        return self._create_call(job, attempt, got)

    def _current(self, job_id: str, attempt: int, token: str) -> dict[str, Any] | None:
        job = self._parts.jobs.get(job_id)
        if job is None or job["state"] != "dispatched" or job["attempt"] != attempt \
                or job.get("dispatch_token") != token:
            return None
        return job

    def _hold_back(self, job: dict[str, Any], campaign: dict[str, str]) -> str:
        """Why this attempt may not be placed now ('' when it may), the job moved accordingly;
        when it may, the job holds a place under the capacity and campaign limits."""
        lifecycle = self._parts.lifecycle
        if campaign.get("status") == "canceled":
            lifecycle.finish(job, "canceled", "canceled")
            return "canceled"
        if campaign.get("status") == "paused":
            lifecycle.park(job)
            return "parked"
        if self._parts.do_not_call.contains(job["to"]):
            lifecycle.finish(job, "failed", "do-not-call")
            return "do-not-call"
        now = time.time()
        opens = due_within_window(job, now)
        if opens > now:
            lifecycle.reschedule(job, opens, "calling-window")
            return "outside-window"
        cap = int(campaign.get("max_concurrent_calls") or 0)
        room = self._parts.capacity.reserve(job["id"], now, job.get("campaign_id") or "", cap)
        if room == -1:
            lifecycle.wait_for_campaign_slot(job)
            return "campaign-cap"
        if room == 0:
            lifecycle.reschedule(job, now + CAPACITY_RETRY_S, "capacity")
            return "no-capacity"
        return ""

    def _scopes(self, job: dict[str, Any], campaign: dict[str, str]) -> list[RateScope]:
        settings = self._parts.settings
        scopes = [RateScope("account", settings.dialer_account_cps),
                  RateScope(f"from:{job['from']}", settings.dialer_number_cps)]
        if campaign.get("calls_per_second"):
            scopes.append(RateScope(f"campaign:{job['campaign_id']}", float(campaign["calls_per_second"])))
        return scopes

    def _create_call(self, job: dict[str, Any], attempt: int, grant: Grant) -> str:
        started = time.monotonic()
        # Written in the first half of the request's time budget at the latest, so the answer has time.
        token = FreshToken(self._limiter, grant, self._parts.settings.dialer_rate_send_within_s,
                           started + self._parts.settings.twilio_timeout_s / 2)
        try:
            call_sid = self._twilio_create(job, attempt, token.check)
        except NoFreshToken as exc:
            self._unsent(job, attempt, exc.wait_s)
            return "rate-wait"
        except (TwilioRestException, requests.RequestException) as exc:
            failure = classify(exc)
            DIAL_PLACEMENTS.labels(result=failure).inc()
            if isinstance(exc, TwilioRateLimited):  # no call made; Twilio asks us to wait
                self._rate_limited(job, attempt, exc.retry_after_s)
            elif failure == "refused":  # Twilio said no: no call
                self._end_placing(job, attempt, str(exc.msg)[:300], refused={"code": exc.code, "status": exc.status})
            elif failure == "unreachable":  # no connection was made, so nothing reached Twilio
                self._end_placing(job, attempt, "Twilio API unreachable")
            else:
                # Twilio may have the call: leave the job 'placing' for the callbacks or the reconciler.
                self._uncertain(job, attempt, exc)
            return failure
        DIAL_PLACEMENTS.labels(result="placed").inc()
        self._placed(job, attempt, call_sid, token.grant.at, create_ms=round((time.monotonic() - started) * 1000, 1))
        return "placed"

    def _unsent(self, job: dict[str, Any], attempt: int, wait_s: float) -> None:
        """The create was never written (no fresh rate token in time): the same attempt, later."""
        with self._parts.jobs.locked(job["id"]):
            job = self._parts.jobs.get(job["id"]) or job
            if job["attempt"] == attempt and job["state"] == "placing":
                self._parts.lifecycle.reschedule(job, time.time() + wait_s, "rate")

    def _end_placing(self, job: dict[str, Any], attempt: int, error: str,
                     refused: dict[str, Any] | None = None) -> None:
        """No call was made: end the attempt, unless a callback has moved the job on meanwhile."""
        jobs, lifecycle = self._parts.jobs, self._parts.lifecycle
        with jobs.locked(job["id"]):
            job = jobs.get(job["id"]) or job
            if job["attempt"] != attempt or job["state"] != "placing":
                return
            if refused is not None:
                lifecycle.event(job, "placement_refused", **refused, error=error)
            lifecycle.end_attempt(job, "placement-error", error=error)

    def _rate_limited(self, job: dict[str, Any], attempt: int, retry_after_s: float) -> None:
        """Twilio made no call and asked us to wait: the same attempt after Retry-After, a bounded
        number of times per job."""
        jobs, lifecycle = self._parts.jobs, self._parts.lifecycle
        with jobs.locked(job["id"]):
            job = jobs.get(job["id"]) or job
            if job["attempt"] != attempt or job["state"] != "placing":
                return
            if int(job.get("rate_limited") or 0) >= MAX_RATE_LIMITED or retry_after_s > MAX_RETRY_AFTER_S:
                lifecycle.event(job, "placement_rate_limited", retry_after_s=retry_after_s, final=True)
                lifecycle.finish(job, "failed", "rate-limited")
                return
            lifecycle.defer_rate_limited(job, time.time() + retry_after_s, retry_after_s)

    def _uncertain(self, job: dict[str, Any], attempt: int, exc: Exception) -> None:
        error = f"HTTP {exc.status}" if isinstance(exc, TwilioRestException) else type(exc).__name__
        log.warning("placing dial job %s: %s; Twilio may have the call, reconciling", job["id"], error)
        with self._parts.jobs.locked(job["id"]):
            job = self._parts.jobs.get(job["id"]) or job
            if job["attempt"] == attempt and job["state"] == "placing":
                self._parts.lifecycle.event(job, "placement_uncertain", error=error)

    def _placed(self, job: dict[str, Any], attempt: int, call_sid: str, granted_at: float, create_ms: float) -> None:
        jobs, lifecycle = self._parts.jobs, self._parts.lifecycle
        with jobs.locked(job["id"]):
            job = jobs.get(job["id"]) or job
            known = {job.get("call_sid")} | {a.get("call_sid") for a in job.get("attempts") or []}
            if call_sid not in known and (job["attempt"] != attempt or is_terminal(job)):
                # The create answered after its attempt was given up (a look-up found no call, or
                # none could be made): hang up, so the callee is not called twice.
                lifecycle.event(job, "late_call_hung_up", call_sid=call_sid, call_attempt=attempt,
                                create_ms=create_ms)
                hang_up = True
            elif job["attempt"] != attempt:
                return
            else:
                lifecycle.adopt_call(job, call_sid)
                if job["state"] == "placing":
                    lifecycle.mark_ringing(job)
                lifecycle.event(job, "placed", call_sid=call_sid, granted_at=granted_at, placed_by=worker_name(),
                                create_ms=create_ms)
                hang_up = job.get("cancel_requested") == "1"  # canceled meanwhile
        if hang_up:
            self._parts.calls.hang_up(call_sid, before_answer=True)

    def _twilio_create(self, job: dict[str, Any], attempt: int, check_before_write: Callable[[], None]) -> str:
        with telemetry.span("twilio.create_call", kind=SpanKind.CLIENT,
                            attrs={"dial_job.id": job["id"], "dial_job.attempt": attempt}) as create_span:
            # Stored before the REST call: Twilio may fetch the outbound TwiML before create returns,
            # and the gateway's webhook span takes this as its parent.
            traceparent = telemetry.current_traceparent()
            if traceparent:
                self._parts.jobs.update(job["id"], call_traceparent=traceparent)
            call_sid = self._parts.calls.place(job, attempt, check_before_write)
            create_span.set_attribute("call.sid", call_sid)
            return call_sid
