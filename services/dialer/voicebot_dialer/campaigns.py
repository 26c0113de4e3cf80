"""Campaigns: many dial jobs sharing settings, a rate, a concurrency cap, pause/resume/cancel."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections import Counter
from typing import Any

from pydantic import ValidationError

from voicebot_dialer.jobs import check_profile, first_due, job_fields
from voicebot_dialer.models import TERMINAL_STATES, CampaignSettings, Contact
from voicebot_dialer.service import DialerService
from voicebot_dialer.store import new_job_id

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
    dialer.store.create_many(jobs, {k: str(v) for k, v in record.items()})
    return progress(dialer, campaign_id)


def progress(dialer: DialerService, campaign_id: str) -> dict[str, Any] | None:
    record = dialer.redis.hgetall(dialer.keys.campaign(campaign_id))
    if not record:
        return None
    job_ids = sorted(dialer.redis.smembers(dialer.keys.campaign_jobs(campaign_id)))
    states = Counter(dialer.store.states(job_ids))
    done = sum(states[s] for s in TERMINAL_STATES)
    status = record["status"]
    if status == "active" and done == len(job_ids):
        status = "completed"
    return {"id": campaign_id, "name": record.get("name", ""), "status": status,
            "total": len(job_ids), "done": done, "states": dict(states),
            "max_concurrent_calls": int(record["max_concurrent_calls"]),
            "calls_per_second": float(record["calls_per_second"]), "created_at": float(record["created_at"])}


def pause(dialer: DialerService, campaign_id: str) -> None:
    dialer.redis.hset(dialer.keys.campaign(campaign_id), "status", "paused")


def resume(dialer: DialerService, campaign_id: str) -> None:
    dialer.redis.hset(dialer.keys.campaign(campaign_id), "status", "active")
    parked_key = dialer.keys.campaign_parked(campaign_id)
    for job_id in dialer.redis.smembers(parked_key):
        with dialer.store.locked(job_id):
            dialer.redis.srem(parked_key, job_id)
            job = dialer.store.get(job_id)
            if job and job["state"] == "scheduled":
                dialer.store.update(job_id, parked="")
                dialer.redis.zadd(dialer.keys.dial_schedule(), {job_id: time.time()})


# KEYS: schedule, campaign waiting, campaign parked, event stream. ARGV: prefix, now, job ids...
# Cancels the jobs that are only waiting (taking one out of the schedule/waiting/parked sets
# means no worker holds it), with their job.canceled event, in one round trip per chunk.
_CANCEL_WAITING_LUA = """
local prefix, now = ARGV[1], tonumber(ARGV[2])
local canceled = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local taken = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id) + redis.call('SREM', KEYS[3], id)
  if taken > 0 then
    local jkey = prefix .. ':dial-job:' .. id
    redis.call('HSET', jkey, 'state', 'canceled', 'outcome', 'canceled', 'ended_at', now, 'updated_at', now,
               'cancel_requested', '1', 'parked', '')
    local event = cjson.encode({dial_job_id = id, kind = 'job.canceled', at = now, state = 'canceled',
                                outcome = 'canceled', attempt = tonumber(redis.call('HGET', jkey, 'attempt'))})
    redis.call('RPUSH', jkey .. ':events', event)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'event', event)
    canceled[#canceled + 1] = id
  end
end
return canceled
"""
CANCEL_CHUNK = 500


def cancel(dialer: DialerService, campaign_id: str) -> None:
    """Cancel every job: waiting ones in bulk, placed or live ones one by one (hung up)."""
    keys = dialer.keys
    dialer.redis.hset(keys.campaign(campaign_id), "status", "canceled")
    job_ids = sorted(dialer.redis.smembers(keys.campaign_jobs(campaign_id)))
    script = dialer.redis.register_script(_CANCEL_WAITING_LUA)
    for start in range(0, len(job_ids), CANCEL_CHUNK):
        chunk = job_ids[start:start + CANCEL_CHUNK]
        canceled = script(keys=[keys.dial_schedule(), keys.campaign_waiting(campaign_id),
                                keys.campaign_parked(campaign_id), keys.dial_event_stream()],
                          args=[keys.prefix, time.time(), *chunk])
        _notify_canceled(dialer, canceled)
    for job_id, state in zip(job_ids, dialer.store.states(job_ids), strict=True):
        if state not in TERMINAL_STATES:
            dialer.cancel(job_id)


def _notify_canceled(dialer: DialerService, job_ids: list[str]) -> None:
    """Webhooks for jobs the bulk path canceled (events are already stored)."""
    if not job_ids or dialer.lifecycle.emit_webhook is None:
        return
    with dialer.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(dialer.keys.dial_job(job_id), "webhook_url", "metadata", "attempt")
        rows = pipe.execute()
    for job_id, (url, metadata, attempt) in zip(job_ids, rows, strict=True):
        if url:
            dialer.lifecycle.emit_webhook(url, {
                "dial_job_id": job_id, "kind": "job.canceled", "at": time.time(), "state": "canceled",
                "outcome": "canceled", "attempt": int(attempt or 0), "metadata": json.loads(metadata or "{}")})
