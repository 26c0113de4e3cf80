"""State changes of a dial job, one named method per transition, with their events and webhooks.

Callers hold the job's lock (`JobStore.locked`) around every method here, so callbacks that
arrive repeated, late or out of order cannot move a job backwards or finish it twice. Each
method updates the caller's job dict as well as Redis, so the caller keeps an accurate view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from voicebot_core.dial_jobs import DialJobState, is_terminal
from voicebot_core.metrics import DIAL_RETRIES
from voicebot_core.vocabulary import DIAL_RETRY_REASONS
from voicebot_dialer.capacity import CapacityGate
from voicebot_dialer.job_store import JobStore
from voicebot_dialer.models import RetryPolicy
from voicebot_dialer.placement_queues import PlacementQueues
from voicebot_dialer.window import CallingWindow

log = logging.getLogger(__name__)

# An attempt that ended with no conversation: every final call status but 'completed', or no call.
RETRYABLE = DIAL_RETRY_REASONS

WebhookEmitter = Callable[[str, dict[str, Any]], None]


def due_within_window(job: dict[str, Any], at: float) -> float:
    window = job.get("calling_window")
    return CallingWindow.model_validate(window).next_open(at) if window else at


class Lifecycle:
    def __init__(self, store: JobStore, queues: PlacementQueues, capacity: CapacityGate,
                 emit_webhook: WebhookEmitter | None = None) -> None:
        self.store = store
        self.queues = queues
        self.capacity = capacity
        self.emit_webhook = emit_webhook

    # events
    def event(self, job: dict[str, Any], kind: str, **data: Any) -> None:
        event = self.store.add_event(job["id"], kind, attempt=job.get("attempt", 0), state=job.get("state"), **data)
        self.send_webhook(job, event)

    @property
    def sends_webhooks(self) -> bool:
        return self.emit_webhook is not None

    def send_webhook(self, job: dict[str, Any], event: dict[str, Any]) -> None:
        """Queue `event` for the job's webhook, if it has one."""
        if not job.get("webhook_url") or not self.emit_webhook:
            return
        try:
            self.emit_webhook(job["webhook_url"], {**event, "metadata": job.get("metadata") or {}})
        except Exception:  # a broker hiccup must not undo a state change already stored
            log.exception("could not queue webhook for dial job %s", job["id"])

    def _set(self, job: dict[str, Any], **fields: Any) -> None:
        job.update(fields)
        self.store.update(job["id"], **fields)

    def _forget_placement(self, job: dict[str, Any]) -> None:
        self.queues.forget_placement(job["id"])
        self.capacity.release(job["id"], job.get("campaign_id") or "")

    # one attempt, step by step
    def mark_dispatched(self, job: dict[str, Any], token: str) -> None:
        """A placement task carrying `token` is queued; only that task may place this attempt."""
        lease_lost = job["state"] == "dispatched"  # the earlier task was lost with its lease
        self._set(job, state="dispatched", dispatch_token=token)
        if lease_lost:
            self.store.add_event(job["id"], "redispatched", attempt=job["attempt"])

    def mark_placing(self, job: dict[str, Any], granted_at: float) -> None:
        """Recorded before the REST call: a crash from here on is reconciled, never redialed."""
        self._set(job, state="placing", placing_at=granted_at)
        self.queues.start_placing(job["id"], time.time())

    def adopt_call(self, job: dict[str, Any], call_sid: str) -> None:
        """Twilio named the attempt's call: keep its first CallSid, and it is no longer 'placing'."""
        if not job.get("call_sid"):
            self._set(job, call_sid=call_sid)
        self.queues.stop_placing(job["id"])

    def mark_ringing(self, job: dict[str, Any]) -> None:
        self._set(job, state="ringing")

    def mark_in_progress(self, job: dict[str, Any]) -> None:
        self._set(job, state="in-progress", answered_at=time.time())

    def note_answered_by(self, job: dict[str, Any], answered_by: str) -> None:
        if answered_by and answered_by != job.get("answered_by"):
            self._set(job, answered_by=answered_by)

    def request_cancel(self, job: dict[str, Any]) -> None:
        """Ends the job at its next step (a placing worker hangs up as soon as Twilio names the call)."""
        self._set(job, cancel_requested="1")
        if job.get("parked") == "1" and job.get("campaign_id"):
            self.queues.unpark(job["campaign_id"], job["id"])

    # scheduling
    def reschedule(self, job: dict[str, Any], due_at: float, reason: str) -> None:
        """Same attempt, later: the window is closed, no capacity, or rate tokens are far off."""
        self._forget_placement(job)
        self._set(job, state="scheduled", due_at=due_at, dispatch_token="")
        self.queues.schedule(job["id"], due_at)
        if reason == "calling-window":
            self.event(job, "deferred", reason=reason, due_at=due_at)

    def defer_rate_limited(self, job: dict[str, Any], due_at: float, retry_after_s: float) -> None:
        """Twilio answered the create 429, so it made no call: the same attempt, not before `due_at`
        (Retry-After has passed); `rate_limited` counts these for the whole job."""
        self._set(job, rate_limited=int(job.get("rate_limited") or 0) + 1)
        self.event(job, "placement_rate_limited", retry_after_s=retry_after_s, due_at=due_at)
        self.reschedule(job, due_at, "twilio-rate-limit")

    def look_up_later(self, job: dict[str, Any], error: str, again_at: float) -> None:
        """Twilio could not tell whether the placing attempt has a call: still 'placing', asked again
        at `again_at`; `lookup_failures` counts the failed look-ups of this attempt."""
        self._set(job, lookup_failures=int(job.get("lookup_failures") or 0) + 1)
        self.event(job, "placement_lookup_failed", error=error, failures=job["lookup_failures"],
                   again_at=again_at)

    def look_up_once_more(self, job: dict[str, Any], again_at: float) -> None:
        """Twilio lists no call of the placing attempt yet: still 'placing', looked up again at
        `again_at`, when a second 'none' ends the attempt."""
        self._set(job, lookup_missed="1")
        self.event(job, "placement_not_found", again_at=again_at)

    def park(self, job: dict[str, Any]) -> None:
        """Hold a paused campaign's job out of the schedule until it resumes."""
        self._forget_placement(job)
        self._set(job, state="scheduled", dispatch_token="", parked="1")
        self.queues.park(job["campaign_id"], job["id"])

    def unpark(self, job: dict[str, Any]) -> None:
        """The campaign resumed: a parked job is due at once."""
        self.queues.unpark(job["campaign_id"], job["id"])
        if job["state"] == "scheduled":
            self._set(job, parked="")
            self.queues.schedule(job["id"], time.time())

    def wait_for_campaign_slot(self, job: dict[str, Any]) -> None:
        """The campaign is at its concurrency cap: wait outside the schedule (no polling) until
        the dispatcher sees a place free (`Dispatcher.promote_waiting`)."""
        self._forget_placement(job)
        self._set(job, state="scheduled", dispatch_token="")
        self.queues.wait_for_slot(job["campaign_id"], job["id"], time.time())

    # endings
    def finish(self, job: dict[str, Any], state: DialJobState, outcome: str, **data: Any) -> None:
        if is_terminal(job):
            return
        self._forget_placement(job)
        self.queues.unschedule(job["id"])
        if job.get("campaign_id"):
            self.queues.stop_waiting(job["campaign_id"], job["id"])
        self._set(job, state=state, outcome=outcome, ended_at=time.time())
        self.event(job, f"job.{state}", outcome=outcome, **data)

    def end_attempt(self, job: dict[str, Any], result: str, **data: Any) -> None:
        """The current attempt is over without a conversation: retry or give up."""
        attempts = list(job.get("attempts") or [])
        attempts.append({"attempt": job["attempt"], "call_sid": job.get("call_sid", ""), "result": result,
                         "ended_at": time.time(), **data})
        self._set(job, attempts=attempts)
        if job.get("cancel_requested") == "1":
            self.finish(job, "canceled", "canceled")
            return
        if result in RETRYABLE and job["attempt"] < job["max_attempts"]:
            policy = RetryPolicy.model_validate(job.get("retry") or {})
            next_attempt = job["attempt"] + 1
            due_at = due_within_window(job, time.time() + policy.delay_before(next_attempt))
            self._forget_placement(job)
            self._set(job, state="scheduled", attempt=next_attempt, due_at=due_at, call_sid="",
                      answered_by="", dispatch_token="", lookup_failures=0, lookup_missed="")
            self.queues.schedule(job["id"], due_at)
            DIAL_RETRIES.labels(reason=result).inc()
            self.event(job, "retry_scheduled", reason=result, due_at=due_at)
            return
        self.finish(job, "failed", result)

    def end_attempt_completed(self, job: dict[str, Any], outcome: str, params: dict[str, str]) -> None:
        """The call was answered and has ended (`outcome` 'completed' or 'machine')."""
        attempts = list(job.get("attempts") or [])
        attempts.append({"attempt": job["attempt"], "call_sid": job.get("call_sid", ""), "result": outcome,
                         "call_duration": params.get("CallDuration", ""), "ended_at": time.time()})
        self._set(job, attempts=attempts, recording_url=params.get("RecordingUrl", job.get("recording_url", "")))
        self.finish(job, "completed", outcome, call_sid=job.get("call_sid", ""))
