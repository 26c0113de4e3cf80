"""Shapes the dialer API answers with (documented by `response_models`), and the small checks its
routes share."""

from __future__ import annotations

import hashlib
from typing import Any

from voicebot_core.dial_jobs import is_terminal
from voicebot_dialer.job_store import JobStore
from voicebot_dialer.jobs import InvalidRequest
from voicebot_dialer.models import to_e164

# Page cursors are Redis offsets and SSCAN cursors; kept to integers every JSON reader holds exactly
# (and offset + page stays inside Redis' 64-bit ranges).
MAX_CURSOR = 2**53 - 1


def key_id(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def e164_or_422(number: str) -> str:
    try:
        return to_e164(number)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def job_view(jobs: JobStore, job: dict[str, Any], detail: bool) -> dict[str, Any]:
    """`detail`: with attempts and events (transcript and recording are the call record's)."""
    view = {
        "id": job["id"], "state": job["state"], "outcome": job.get("outcome", ""), "to": job["to"],
        "from": job["from"], "agent_profile": job.get("agent_profile", ""), "variables": job.get("variables", {}),
        "metadata": job.get("metadata", {}), "attempt": job["attempt"], "max_attempts": job["max_attempts"],
        "campaign_id": job.get("campaign_id", ""), "call_sid": job.get("call_sid", ""),
        "answered_by": job.get("answered_by", ""), "machine_detection": job.get("machine_detection", "none"),
        "created_at": float(job["created_at"]),
        "next_attempt_at": float(job["due_at"]) if job["state"] == "scheduled" and job.get("due_at") else None,
        "terminal": is_terminal(job),
    }
    if detail:
        view["attempts"] = job.get("attempts") or []
        view["events"] = jobs.events(job["id"])
        view["transcript"] = None
        view["recording_url"] = job.get("recording_url", "")
    return view
