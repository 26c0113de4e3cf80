"""State changes of a dial job: scheduling, attempts, retries, terminal outcomes, events.

Callers hold the job's lock (`JobStore.locked`) around every method here, so callbacks that
arrive repeated, late or out of order cannot move a job backwards or finish it twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from voicebot_core.metrics import CALL_OUTCOMES, DIAL_RETRIES
from voicebot_dialer.capacity import CapacityGate
from voicebot_dialer.models import RetryPolicy
from voicebot_dialer.store import JobStore, is_terminal
from voicebot_dialer.window import CallingWindow

log = logging.getLogger(__name__)

# How far along an attempt is; a callback never moves a job to a lower rank.
STATE_RANK = {"scheduled": 0, "dispatched": 0, "placing": 1, "ringing": 2, "in-progress": 3}
RETRYABLE = ("busy", "no-answer", "failed", "canceled", "placement-lost", "placement-error")
MACHINE_ANSWERS = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")

WebhookEmitter = Callable[[str, dict[str, Any]], None]


def due_within_window(job: dict[str, Any], at: float) -> float:
    window = job.get("calling_window")
    return CallingWindow.model_validate(window).next_open(at) if window else at


class Lifecycle:
    def __init__(self, store: JobStore, capacity: CapacityGate, emit_webhook: WebhookEmitter | None = None) -> None:
        self.store = store
        self.capacity = capacity
        self.emit_webhook = emit_webhook

    # events
    def event(self, job: dict[str, Any], kind: str, **data: Any) -> None:
        event = self.store.add_event(job["id"], kind, attempt=job.get("attempt", 0), state=job.get("state"), **data)
        if job.get("webhook_url") and self.emit_webhook:
            try:
                self.emit_webhook(job["webhook_url"], {**event, "metadata": job.get("metadata") or {}})
            except Exception:  # a broker hiccup must not undo a state change already stored
                log.exception("could not queue webhook for dial job %s", job["id"])

    def _set(self, job: dict[str, Any], **fields: Any) -> None:
        job.update(fields)
        self.store.update(job["id"], **fields)

    def _forget_placement(self, job: dict[str, Any]) -> None:
        keys, redis = self.store.keys, self.store.redis
        with redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.dial_dispatched(), job["id"])
            pipe.zrem(keys.dial_placing(), job["id"])
            pipe.execute()
        self.capacity.release(job["id"], job.get("campaign_id") or "")

    # scheduling
    def reschedule(self, job: dict[str, Any], due_at: float, reason: str) -> None:
        """Same attempt, later: the window is closed, no capacity, or rate tokens are far off."""
        self._forget_placement(job)
        self._set(job, state="scheduled", due_at=due_at, dispatch_token="")
        self.store.redis.zadd(self.store.keys.dial_schedule(), {job["id"]: due_at})
        if reason == "calling-window":
            self.event(job, "deferred", reason=reason, due_at=due_at)

    def park(self, job: dict[str, Any]) -> None:
        """Hold a paused campaign's job out of the schedule until it resumes."""
        self._forget_placement(job)
        self._set(job, state="scheduled", dispatch_token="", parked="1")
        self.store.redis.sadd(self.store.keys.campaign_parked(job["campaign_id"]), job["id"])

    def wait_for_campaign_slot(self, job: dict[str, Any]) -> None:
        """The campaign is at its concurrency cap: wait outside the schedule (no polling) until
        the dispatcher sees a place free (`DialerService.promote_waiting`)."""
        self._forget_placement(job)
        self._set(job, state="scheduled", dispatch_token="")
        keys = self.store.keys
        with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.campaign_waiting(job["campaign_id"]), {job["id"]: time.time()})
            pipe.sadd(keys.campaigns_waiting(), job["campaign_id"])
            pipe.execute()

    def finish(self, job: dict[str, Any], state: str, outcome: str, **data: Any) -> None:
        if is_terminal(job):
            return
        self._forget_placement(job)
        self.store.redis.zrem(self.store.keys.dial_schedule(), job["id"])
        if job.get("campaign_id"):
            self.store.redis.zrem(self.store.keys.campaign_waiting(job["campaign_id"]), job["id"])
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
                      answered_by="", dispatch_token="")
            self.store.redis.zadd(self.store.keys.dial_schedule(), {job["id"]: due_at})
            DIAL_RETRIES.labels(reason=result).inc()
            self.event(job, "retry_scheduled", reason=result, due_at=due_at)
            return
        self.finish(job, "failed", result)

    # Twilio callbacks
    def apply_callback(self, job: dict[str, Any], attempt: int, kind: str, params: dict[str, str]) -> str:
        """Apply one status/AMD callback. Returns an action the caller performs outside the lock:
        '' (none), 'hangup' or 'voicemail' (answering machine, per the job's policy)."""
        call_sid = params.get("CallSid", "")
        status = params.get("CallStatus", "")
        answered_by = params.get("AnsweredBy", "")
        self.event(job, f"call.{kind}", call_sid=call_sid, call_status=status, answered_by=answered_by,
                   callback_attempt=attempt)
        if attempt != job["attempt"] or is_terminal(job):
            return ""  # a late callback of an earlier attempt, or after the end: recorded only
        if call_sid and not job.get("call_sid"):
            self._set(job, call_sid=call_sid)
            self.store.redis.set(self.store.keys.dial_job_by_call(call_sid), job["id"], ex=30 * 24 * 3600)
        if call_sid:
            self.store.redis.zrem(self.store.keys.dial_placing(), job["id"])
        if answered_by and answered_by != job.get("answered_by"):
            self._set(job, answered_by=answered_by)
        if kind == "amd":
            if answered_by in MACHINE_ANSWERS and job.get("machine_detection") in ("hangup", "voicemail"):
                return job["machine_detection"]
            return ""
        rank = STATE_RANK.get(job.get("state", ""), 0)
        if status in ("queued", "initiated", "ringing") and rank < STATE_RANK["ringing"]:
            self._set(job, state="ringing")
        elif status in ("in-progress", "answered") and rank < STATE_RANK["in-progress"]:
            self._set(job, state="in-progress", answered_at=time.time())
        elif status == "completed":
            machine = job.get("answered_by", "") in MACHINE_ANSWERS
            self.end_attempt_completed(job, "machine" if machine else "completed", params)
        elif status in ("busy", "no-answer", "failed", "canceled"):
            if status != "canceled":  # the call never reached a bot-worker, which counts the others
                CALL_OUTCOMES.labels(direction="outbound", outcome=status).inc()
            self.end_attempt(job, status, call_duration=params.get("CallDuration", ""))
        return ""

    def end_attempt_completed(self, job: dict[str, Any], outcome: str, params: dict[str, str]) -> None:
        attempts = list(job.get("attempts") or [])
        attempts.append({"attempt": job["attempt"], "call_sid": job.get("call_sid", ""), "result": outcome,
                         "call_duration": params.get("CallDuration", ""), "ended_at": time.time()})
        self._set(job, attempts=attempts, recording_url=params.get("RecordingUrl", job.get("recording_url", "")))
        self.finish(job, "completed", outcome, call_sid=job.get("call_sid", ""))
