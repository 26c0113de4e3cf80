"""Crash and lost-callback recovery: ask Twilio what became of calls we heard nothing about.

A worker killed during the REST call leaves its job 'placing' (adopt the call if Twilio has it,
else the attempt is over: never re-dial the same attempt); a call whose final callback was lost
holds its capacity place until Twilio's own status of it is applied.
"""

from __future__ import annotations

import logging
import time

from twilio.base.exceptions import TwilioRestException

from voicebot_core.dial_jobs import is_terminal
from voicebot_core.vocabulary import is_terminal_status
from voicebot_dialer.callbacks import Callbacks
from voicebot_dialer.parts import DialerParts

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, parts: DialerParts, callbacks: Callbacks) -> None:
        self._parts = parts
        self._callbacks = callbacks

    def reconcile_stuck_placements(self) -> int:
        """Jobs left in 'placing' by a dead worker: adopt the call if Twilio has it, else the
        attempt is over (never re-dial the same attempt)."""
        jobs, queues, lifecycle = self._parts.jobs, self._parts.queues, self._parts.lifecycle
        fixed = 0
        for job_id in queues.placing_since(time.time() - self._parts.settings.dialer_placing_timeout_s):
            if not queues.stop_placing(job_id):
                continue  # another worker took it
            found = self._find_placed_call(job_id)
            with jobs.locked(job_id):
                job = jobs.get(job_id)
                if job is None or job["state"] != "placing" or job.get("call_sid"):
                    continue
                if found:
                    sid, status = found
                    lifecycle.event(job, "placement_reconciled", call_sid=sid)
                    self._callbacks.apply(job, job["attempt"], "status", {"CallSid": sid, "CallStatus": status})
                else:
                    lifecycle.event(job, "placement_lost")
                    lifecycle.end_attempt(job, "placement-lost")
                fixed += 1
        return fixed

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
            except TwilioRestException as exc:
                log.warning("cannot fetch call of dial job %s: %s", job_id, exc.msg)
                continue
            if is_terminal_status(call.status):
                params = {"CallSid": call.sid, "CallStatus": call.status, "CallDuration": str(call.duration or ""),
                          "AnsweredBy": call.answered_by or ""}
                self._callbacks.handle(job_id, job["attempt"], "status", params)
                applied += 1
        return applied

    def _find_placed_call(self, job_id: str) -> tuple[str, str] | None:
        job = self._parts.jobs.get(job_id)
        if not job or not job.get("placing_at"):
            return None
        since = float(job["placing_at"]) - 5
        try:
            calls = self._parts.calls.between(job["to"], job["from"])
        except Exception:  # the API (or emulator) cannot list: treat as not placed
            log.warning("could not list calls to reconcile dial job %s", job_id, exc_info=True)
            return None
        # Twilio's call resource does not echo our Url: match number pair and creation time.
        for call in calls:
            created = call.date_created.timestamp() if call.date_created else 0
            if since <= created <= since + 5 + self._parts.settings.dialer_placing_timeout_s:
                return call.sid, call.status
        return None
