"""Crash and lost-callback recovery: ask Twilio what became of calls we heard nothing about.

A job still 'placing' DIALER_PLACING_TIMEOUT_S after its create started (a worker died during it,
or the create's outcome was uncertain) is looked up in Twilio; by then our create request has
ended (the REST client's timeout is shorter). One matching call: adopted. No call: looked up once
more a placing timeout later (Twilio may finish a create after our client gave up), and only if
Twilio still lists none is the attempt over (`placement-lost`; the next attempt may dial). A
look-up that fails or finds several candidate calls says nothing: it is tried again with backoff,
and after LOOKUP_MAX_FAILURES the job fails as `placement-unknown`, never dialed again. A call
whose final callback was lost holds its capacity place until Twilio's own status of it is applied.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from voicebot_core.dial_jobs import is_terminal
from voicebot_core.vocabulary import is_terminal_status
from voicebot_dialer.callbacks import Callbacks
from voicebot_dialer.parts import DialerParts

log = logging.getLogger(__name__)

LOOKUP_MAX_FAILURES = 6  # failed or ambiguous look-ups of one attempt before the job fails
LOOKUP_BACKOFF_S = 2.0  # wait after the first; doubles each time (2+4+8+16+32 s in all)
LOOKUP_BACKOFF_MAX_S = 60.0
CLOCK_SKEW_S = 2.0  # Twilio's whole-second date_created, and its clock against ours


class LookupUncertain(Exception):
    """Twilio's answer cannot tell whether the attempt has a call."""


def describe(exc: Exception) -> str:
    if isinstance(exc, TwilioRestException):
        return f"HTTP {exc.status}" + (f" (code {exc.code})" if exc.code else "")
    # A list page that failed: TwilioException("Unable to fetch page", response)
    status = getattr(exc.args[1], "status_code", None) if len(exc.args) > 1 else None
    if status is not None:
        return f"HTTP {status}"
    return str(exc) if isinstance(exc, LookupUncertain) else type(exc).__name__


class Reconciler:
    def __init__(self, parts: DialerParts, callbacks: Callbacks) -> None:
        self._parts = parts
        self._callbacks = callbacks

    def reconcile_stuck_placements(self) -> int:
        """Jobs 'placing' for longer than the placing timeout: adopt the call if Twilio has it, end
        the attempt if Twilio has none, else look again later (bounded). Returns the jobs settled."""
        jobs, queues = self._parts.jobs, self._parts.queues
        timeout = self._parts.settings.dialer_placing_timeout_s
        settled = 0
        now = time.time()
        for job_id in queues.placing_since(now - timeout):
            # Ours alone for one placing timeout: a reconciler dying mid-look-up only delays it.
            if not queues.claim_stuck(job_id, now - timeout, now):
                continue
            job = jobs.get(job_id)
            found: tuple[str, str] | None = None
            error = ""
            if job is not None and job["state"] == "placing" and not job.get("call_sid"):
                try:
                    found = self._find_placed_call(job)
                except (TwilioException, requests.RequestException, LookupUncertain) as exc:
                    error = describe(exc)
                    log.warning("cannot tell whether dial job %s has a call: %s", job_id, error)
            with jobs.locked(job_id):
                latest = jobs.get(job_id)
                if latest is None or latest["state"] != "placing" or latest.get("call_sid"):
                    queues.stop_placing(job_id)  # moved on, named its call, or gone: nothing to look up
                    continue
                if job is None or latest["attempt"] != job["attempt"]:
                    continue  # a later attempt is placing now: its own look-up comes in time
                settled += self._settle(latest, found, error)
        return settled

    def reclaim_from_dead_workers(self) -> int:
        """Jobs whose worker died (worker_liveness): a dispatched one's lease ends now, so the next
        dispatch pass sends it again under a new token; a placing one is looked up in Twilio on the
        next reconcile pass, unless a look-up of it has already been made (its next one stays
        a placing timeout later, as a second look-up must). Returns the jobs reclaimed."""
        queues, liveness = self._parts.queues, self._parts.liveness
        reclaimed = 0
        now = time.time()
        for job_id, worker in liveness.jobs_of_dead_workers().items():
            liveness.release(job_id)
            if queues.is_dispatched(job_id):
                queues.end_lease(job_id, now)
            elif queues.is_placing(job_id):
                job = self._parts.jobs.get(job_id) or {}
                if job.get("lookup_missed") or int(job.get("lookup_failures") or 0):
                    continue
                queues.recheck_placing(job_id, now - self._parts.settings.dialer_placing_timeout_s)
            else:
                continue
            log.warning("dialer worker %s is gone: reclaiming dial job %s", worker, job_id)
            reclaimed += 1
        return reclaimed

    def _settle(self, job: dict[str, Any], found: tuple[str, str] | None, error: str) -> int:
        """Apply one look-up's answer under the job's lock; 1 when the placement is settled."""
        lifecycle = self._parts.lifecycle
        if error:
            failures = int(job.get("lookup_failures") or 0) + 1
            if failures >= LOOKUP_MAX_FAILURES:
                lifecycle.event(job, "placement_unknown", error=error, failures=failures)
                lifecycle.finish(job, "failed", "placement-unknown")
                return 1
            again_at = time.time() + min(LOOKUP_BACKOFF_S * 2 ** (failures - 1), LOOKUP_BACKOFF_MAX_S)
            lifecycle.look_up_later(job, error, again_at)
            self._parts.queues.recheck_placing(job["id"], again_at - self._parts.settings.dialer_placing_timeout_s)
            return 0
        if found:
            sid, status = found
            lifecycle.event(job, "placement_reconciled", call_sid=sid)
            self._callbacks.apply(job, job["attempt"], "status", {"CallSid": sid, "CallStatus": status})
        elif job.get("lookup_missed") != "1":
            # Claimed above, it is listed again a placing timeout from now: ask Twilio once more then.
            lifecycle.look_up_once_more(job, time.time() + self._parts.settings.dialer_placing_timeout_s)
            return 0
        else:
            lifecycle.event(job, "placement_lost")
            lifecycle.end_attempt(job, "placement-lost")
        return 1

    def reconcile_silent_calls(self, batch: int = 20) -> int:
        """Calls we placed but heard nothing final about for a long time (callbacks lost): ask
        Twilio for the call's status and apply it as if the callback had arrived."""
        capacity = self._parts.capacity
        applied = 0
        for job_id in capacity.silent_since(time.time() - self._parts.settings.stale_call_s, batch):
            # Check again later unless this pass ends it; also keeps other workers off it.
            capacity.recheck_later(job_id, time.time())
            job = self._parts.jobs.get(job_id)
            if job is None or is_terminal(job):
                capacity.release(job_id, (job or {}).get("campaign_id") or "")
                continue
            if not job.get("call_sid"):
                continue
            try:
                call = self._parts.calls.fetch(job["call_sid"])
            except (TwilioException, requests.RequestException) as exc:
                log.warning("cannot fetch call of dial job %s: %s", job_id, describe(exc))
                continue
            if is_terminal_status(call.status):
                params = {"CallSid": call.sid, "CallStatus": call.status, "CallDuration": str(call.duration or ""),
                          "AnsweredBy": call.answered_by or ""}
                self._callbacks.handle(job_id, job["attempt"], "status", params)
                applied += 1
        return applied

    def _find_placed_call(self, job: dict[str, Any]) -> tuple[str, str] | None:
        """(CallSid, status) of the attempt's call, None when Twilio has none; LookupUncertain when
        more than one call could be it.

        Twilio's Call resource echoes nothing we sent but To and From (not our Url or status
        callback), so a call matches by number pair and creation time: from just before the
        attempt started placing until now (a create Twilio finished late still counts), calls of
        the job's earlier attempts left out."""
        placing_at = float(job.get("placing_at") or 0)
        if not placing_at:
            raise LookupUncertain("no placing time recorded")
        earliest, latest = placing_at - CLOCK_SKEW_S, time.time() + CLOCK_SKEW_S
        earlier = {a.get("call_sid") for a in job.get("attempts") or []}
        matches = [call for call in self._parts.calls.between(job["to"], job["from"])
                   if call.sid not in earlier and (call.date_created is None
                                                   or earliest <= call.date_created.timestamp() <= latest)]
        if len(matches) > 1:
            raise LookupUncertain(f"{len(matches)} calls to the number could be this attempt's")
        return (matches[0].sid, matches[0].status) if matches else None
