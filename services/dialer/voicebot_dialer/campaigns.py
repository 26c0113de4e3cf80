"""Campaigns: many dial jobs sharing settings, a rate, a concurrency cap; CSV contacts, progress,
pause and resume (cancel is `Cancellation.cancel_campaign`)."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections import Counter
from typing import Any

from pydantic import ValidationError

from voicebot_core.dial_jobs import TERMINAL_DIAL_JOB_STATES
from voicebot_dialer.job_store import new_job_id
from voicebot_dialer.jobs import check_profile, first_due, job_fields
from voicebot_dialer.models import CampaignSettings, Contact
from voicebot_dialer.service import DialerService

PHONE_COLUMNS = ("to", "phone", "number", "phone_number")


class ContactErrors(ValueError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid contacts")
        self.errors = errors


def contacts_from_csv(text: str, max_rows: int) -> list[Contact]:
    """CSV with a header: a `to` (or phone/number) column; `meta_*` columns go to metadata, every
    other column becomes a variable."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    phone_column = next((c for c in fields if c.lower() in PHONE_COLUMNS), None)
    if phone_column is None:
        raise ContactErrors([{"row": 1, "message": f"the header needs a phone column, one of {PHONE_COLUMNS}"}])
    contacts, errors = [], []
    for row_number, row in enumerate(reader, start=2):
        if len(contacts) + len(errors) >= max_rows:
            errors.append({"row": row_number, "message": f"more than {max_rows} contacts"})
            break
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        variables = {k: v for k, v in row.items() if k and k != phone_column and not k.startswith("meta_")}
        metadata = {k[5:]: v for k, v in row.items() if k.startswith("meta_")}
        try:
            contacts.append(Contact(to=row.get(phone_column, ""), variables=variables, metadata=metadata))
        except ValidationError as exc:
            errors.append({"row": row_number, "message": exc.errors()[0]["msg"]})
    if errors:
        raise ContactErrors(errors)
    if not contacts:
        raise ContactErrors([{"row": 2, "message": "no contacts in the file"}])
    return contacts


def create_campaign(dialer: DialerService, options: CampaignSettings, contacts: list[Contact]) -> dict[str, Any]:
    settings = dialer.settings
    profile = check_profile(settings, options.agent_profile)
    campaign_id = "cmp_" + uuid.uuid4().hex
    due = first_due(options)
    jobs = []
    for contact in contacts:
        fields = job_fields(settings, options, contact.to, contact.variables, contact.metadata, profile, campaign_id)
        fields["id"] = new_job_id()
        jobs.append((fields, due))
    record = {"id": campaign_id, "name": options.name, "status": "active", "created_at": time.time(),
              "total": len(contacts), "max_concurrent_calls": options.max_concurrent_calls,
              "calls_per_second": options.calls_per_second,
              "settings": options.model_dump_json(by_alias=True, exclude_none=True)}
    dialer.campaigns.create({k: str(v) for k, v in record.items()}, jobs)
    return progress(dialer, campaign_id)


def progress(dialer: DialerService, campaign_id: str) -> dict[str, Any] | None:
    record = dialer.campaigns.get(campaign_id)
    if not record:
        return None
    job_ids = dialer.campaigns.job_ids(campaign_id)
    states = Counter(dialer.store.states(job_ids))
    done = sum(states[s] for s in TERMINAL_DIAL_JOB_STATES)
    status = record["status"]
    if status == "active" and done == len(job_ids):
        status = "completed"
    return {"id": campaign_id, "name": record.get("name", ""), "status": status,
            "total": len(job_ids), "done": done, "states": dict(states),
            "max_concurrent_calls": int(record["max_concurrent_calls"]),
            "calls_per_second": float(record["calls_per_second"]), "created_at": float(record["created_at"])}


def pause(dialer: DialerService, campaign_id: str) -> None:
    """Jobs not yet placing are parked when a worker picks them up (`Lifecycle.park`)."""
    dialer.campaigns.set_status(campaign_id, "paused")


def resume(dialer: DialerService, campaign_id: str) -> None:
    dialer.campaigns.set_status(campaign_id, "active")
    for job_id in dialer.queues.parked(campaign_id):
        with dialer.store.locked(job_id):
            job = dialer.store.get(job_id)
            if job is None:
                dialer.queues.unpark(campaign_id, job_id)
            else:
                dialer.lifecycle.unpark(job)
