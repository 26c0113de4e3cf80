"""Twilio status and AMD callbacks of dial jobs, and what an answering machine gets.

The gateway hands each callback over (`voicebot_core.dial_status`); Celery may deliver it more
than once and callbacks overtake each other, so each is fingerprinted once and never moves a
job backwards. An asynchronous AMD answer is acted on with core's answering-machine policy,
the same one the gateway's synchronous path uses.
"""

from __future__ import annotations

import logging
from typing import Any

from voicebot_core import answering_machine, twiml
from voicebot_core.dial_jobs import DialJob, is_terminal
from voicebot_core.metrics import CALL_OUTCOMES
from voicebot_core.profiles import load_profiles
from voicebot_core.vocabulary import is_machine, is_terminal_status
from voicebot_dialer.parts import DialerParts

log = logging.getLogger(__name__)

# How far along an attempt is; a callback never moves a job to a lower rank.
STATE_RANK = {"scheduled": 0, "dispatched": 0, "placing": 1, "ringing": 2, "in-progress": 3}


def fingerprint(kind: str, attempt: int, params: dict[str, str]) -> str:
    return "|".join((kind, str(attempt), params.get("CallSid", ""), params.get("CallStatus", ""),
                     params.get("AnsweredBy", "")))


class Callbacks:
    def __init__(self, parts: DialerParts) -> None:
        self._parts = parts

    def handle(self, job_id: str, attempt: int, kind: str, params: dict[str, str]) -> str:
        """Apply a callback once; a machine answer is then acted on outside the job's lock."""
        jobs = self._parts.jobs
        seen = fingerprint(kind, attempt, params)
        if not jobs.first_delivery(job_id, seen):
            return "duplicate"
        try:
            with jobs.locked(job_id):
                job = jobs.get(job_id)
                if job is None:
                    return "unknown-job"
                machine = self.apply(job, int(attempt), kind, params)
        except Exception:
            jobs.forget_delivery(job_id, seen)
            raise
        if machine and params.get("CallSid"):
            self._answer_machine(job, params["CallSid"])
        return job["machine_detection"] if machine else "applied"

    def apply(self, job: dict[str, Any], attempt: int, kind: str, params: dict[str, str]) -> bool:
        """Apply one status/AMD callback under the job's lock. True when a machine answered and
        the job's policy acts on it (the caller hangs up or leaves the voicemail)."""
        call_sid = params.get("CallSid", "")
        status = params.get("CallStatus", "")
        answered_by = params.get("AnsweredBy", "")
        lifecycle = self._parts.lifecycle
        lifecycle.event(job, f"call.{kind}", call_sid=call_sid, call_status=status, answered_by=answered_by,
                        callback_attempt=attempt)
        if attempt != job["attempt"] or is_terminal(job):
            return False  # a late callback of an earlier attempt, or after the end: recorded only
        if call_sid:
            lifecycle.adopt_call(job, call_sid)
        lifecycle.note_answered_by(job, answered_by)
        if kind == "amd":
            return answering_machine.acts_on(DialJob.model_validate(job), answered_by)
        rank = STATE_RANK.get(job.get("state", ""), 0)
        if status in ("queued", "initiated", "ringing") and rank < STATE_RANK["ringing"]:
            lifecycle.mark_ringing(job)
        elif status in ("in-progress", "answered") and rank < STATE_RANK["in-progress"]:
            lifecycle.mark_in_progress(job)
        elif status == "completed":
            outcome = "machine" if is_machine(job.get("answered_by", "")) else "completed"
            lifecycle.end_attempt_completed(job, outcome, params)
        elif is_terminal_status(status):
            if status != "canceled":  # the call never reached a bot-worker, which counts the others
                CALL_OUTCOMES.labels(direction="outbound", outcome=status).inc()
            lifecycle.end_attempt(job, status, call_duration=params.get("CallDuration", ""))
        return False

    def _answer_machine(self, job: dict[str, Any], call_sid: str) -> None:
        """Asynchronous AMD found a machine: leave the voicemail (variables filled) or hang up."""
        dial_job = DialJob.model_validate(job)
        if dial_job.machine_detection == "voicemail":
            message = self._voicemail_message(dial_job)
            self._parts.calls.redirect(call_sid, twiml.say_and_hang_up(message))
        else:
            message = ""
            self._parts.calls.hang_up(call_sid, before_answer=False)
        self._parts.jobs.add_event(job["id"], "machine_" + ("voicemail_left" if message else "hung_up"),
                                   attempt=job["attempt"], call_sid=call_sid)

    def _voicemail_message(self, job: DialJob) -> str:
        try:
            profiles = load_profiles(self._parts.settings.agent_profiles_path)
        except (OSError, ValueError):
            log.warning("no agent profiles for dial job %s's voicemail: hanging up instead", job.id)
            return ""
        return answering_machine.voicemail_message(job, profiles)
