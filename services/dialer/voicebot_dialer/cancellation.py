"""Canceling a dial job (its ringing or live call is hung up) or every job of a campaign."""

from __future__ import annotations

import time
from typing import Any

from voicebot_core.dial_jobs import TERMINAL_DIAL_JOB_STATES, is_terminal
from voicebot_dialer.parts import DialerParts

CANCEL_CHUNK = 500


class Cancellation:
    def __init__(self, parts: DialerParts) -> None:
        self._parts = parts

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a job; a live call is hung up. Returns the job (None when unknown)."""
        jobs, lifecycle = self._parts.jobs, self._parts.lifecycle
        with jobs.locked(job_id):
            job = jobs.get(job_id)
            if job is None or is_terminal(job):
                return job
            call_sid, state = job.get("call_sid", ""), job["state"]
            lifecycle.request_cancel(job)
            if state == "placing" and not call_sid:
                return job  # the placing worker hangs up as soon as Twilio names the call
            lifecycle.finish(job, "canceled", "canceled")
        if call_sid:
            self._parts.calls.hang_up(call_sid, before_answer=state != "in-progress")
        return job

    def cancel_campaign(self, campaign_id: str) -> None:
        """Cancel every job: waiting ones in bulk, placed or live ones one by one (hung up)."""
        campaigns = self._parts.campaigns
        campaigns.set_status(campaign_id, "canceled")
        job_ids = campaigns.job_ids(campaign_id)
        for start in range(0, len(job_ids), CANCEL_CHUNK):
            chunk = job_ids[start:start + CANCEL_CHUNK]
            self._notify_canceled(campaigns.cancel_waiting(campaign_id, chunk, time.time()))
        for job_id, state in zip(job_ids, self._parts.jobs.states(job_ids), strict=True):
            if state not in TERMINAL_DIAL_JOB_STATES:
                self.cancel(job_id)

    def _notify_canceled(self, events: list[dict[str, Any]]) -> None:
        """Webhooks of the job.canceled events the bulk path stored (same event ids)."""
        if not events or not self._parts.lifecycle.sends_webhooks:
            return
        targets = self._parts.jobs.webhook_targets([event["dial_job_id"] for event in events])
        for job, event in zip(targets, events, strict=True):
            self._parts.lifecycle.send_webhook(job, event)
