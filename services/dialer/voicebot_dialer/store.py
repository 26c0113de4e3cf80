"""Dial jobs in Redis: the job hash, its events, schedule and the indexes the API lists.

Every field of a job hash is a string; JSON for nested values. The gateway and bot-worker read
`to`, `from`, `agent_profile`, `variables`, `overrides` and `machine_detection` from it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis

from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.models import TERMINAL_STATES

JOB_TTL_S = 30 * 24 * 3600
IDEMPOTENCY_TTL_S = 24 * 3600
EVENT_STREAM_MAXLEN = 100_000
JSON_FIELDS = ("variables", "overrides", "metadata", "retry", "calling_window", "attempts")

# KEYS: idempotency key ('' when none), job hash, jobs index, schedule, campaign jobs ('' none)
# ARGV: job id, due, created_at, idempotency ttl, request fingerprint, then field/value pairs.
# Returns {job id, 1} when created, {existing id, 0, existing fingerprint} for a repeated key.
_CREATE_LUA = """
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local sep = string.find(existing, '|', 1, true)
    return {string.sub(existing, 1, sep - 1), 0, string.sub(existing, sep + 1)}
  end
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[5], 'EX', tonumber(ARGV[4]))
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
if KEYS[5] ~= '' then redis.call('SADD', KEYS[5], ARGV[1]) end
return {ARGV[1], 1, ARGV[5]}
"""


def new_job_id() -> str:
    return "dj_" + uuid.uuid4().hex


def encode_fields(fields: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in fields.items():
        if name in JSON_FIELDS or isinstance(value, dict | list):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "1" if value else "0"
        else:
            out[name] = "" if value is None else str(value)
    return out


def decode_job(raw: dict[str, str]) -> dict[str, Any]:
    job: dict[str, Any] = dict(raw)
    for name in JSON_FIELDS:
        if raw.get(name):
            job[name] = json.loads(raw[name])
    for name in ("attempt", "max_attempts"):
        job[name] = int(raw.get(name) or 0)
    return job


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class JobStore:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self.redis = redis_client
        self.keys = keys
        self._create = redis_client.register_script(_CREATE_LUA)

    # creation
    def create(self, fields: dict[str, Any], due_at: float, idempotency_key: str | None = None,
               fingerprint: str = "") -> tuple[str, bool]:
        """Store a new job and schedule it; with a repeated idempotency key return the first job."""
        job_id = fields.get("id") or new_job_id()
        now = time.time()
        record = encode_fields({**fields, "id": job_id, "created_at": now, "updated_at": now,
                                "due_at": due_at})
        flat = [item for pair in record.items() for item in pair]
        idem_key = self.keys.idempotency(hashlib.sha256(idempotency_key.encode()).hexdigest()) \
            if idempotency_key else ""
        campaign_id = fields.get("campaign_id") or ""
        result = self._create(
            keys=[idem_key, self.keys.dial_job(job_id), self.keys.dial_jobs_index(), self.keys.dial_schedule(),
                  self.keys.campaign_jobs(campaign_id) if campaign_id else ""],
            args=[job_id, due_at, now, IDEMPOTENCY_TTL_S, fingerprint, *flat],
        )
        stored_id, created, stored_fingerprint = result[0], int(result[1]), result[2]
        if not created and stored_fingerprint != fingerprint:
            raise IdempotencyConflict(stored_id)
        return stored_id, bool(created)

    def create_many(self, jobs: list[tuple[dict[str, Any], float]], campaign_key_fields: dict[str, str]) -> None:
        """Store a campaign's jobs in one MULTI: all or none."""
        now = time.time()
        with self.redis.pipeline(transaction=True) as pipe:
            campaign_id = campaign_key_fields["id"]
            pipe.hset(self.keys.campaign(campaign_id), mapping=campaign_key_fields)
            pipe.zadd(self.keys.campaigns_index(), {campaign_id: now})
            for fields, due_at in jobs:
                record = encode_fields({**fields, "created_at": now, "updated_at": now, "due_at": due_at})
                pipe.hset(self.keys.dial_job(fields["id"]), mapping=record)
                pipe.zadd(self.keys.dial_jobs_index(), {fields["id"]: now})
                pipe.zadd(self.keys.dial_schedule(), {fields["id"]: due_at})
                pipe.sadd(self.keys.campaign_jobs(campaign_id), fields["id"])
            pipe.execute()

    # reads
    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(self.keys.dial_job(job_id))
        return decode_job(raw) if raw else None

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(self.keys.dial_job_events(job_id), 0, -1)]

    def states(self, job_ids: list[str]) -> list[str]:
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.dial_job(job_id), "state")
            return [s or "" for s in pipe.execute()]

    def list_ids(self, offset: int, count: int) -> list[str]:
        return self.redis.zrevrange(self.keys.dial_jobs_index(), offset, offset + count - 1)

    # writes
    def update(self, job_id: str, **fields: Any) -> None:
        self.redis.hset(self.keys.dial_job(job_id), mapping=encode_fields({**fields, "updated_at": time.time()}))

    def add_event(self, job_id: str, kind: str, **data: Any) -> dict[str, Any]:
        event = {"dial_job_id": job_id, "kind": kind, "at": time.time(), **data}
        payload = json.dumps(event)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self.keys.dial_job_events(job_id), payload)
            pipe.expire(self.keys.dial_job_events(job_id), JOB_TTL_S)
            pipe.xadd(self.keys.dial_event_stream(), {"event": payload}, maxlen=EVENT_STREAM_MAXLEN,
                      approximate=True)
            pipe.execute()
        return event

    def is_do_not_call(self, number: str) -> bool:
        return bool(self.redis.sismember(self.keys.do_not_call(), number))

    @contextmanager
    def locked(self, job_id: str, wait_s: float = 15.0) -> Iterator[None]:
        """Serialise state changes of one job across processes (callbacks race each other).
        Holders never call Twilio inside; the lock expires after 5 s if its holder was killed."""
        lock = self.redis.lock(self.keys.dial_job_lock(job_id), timeout=5.0, blocking_timeout=wait_s)
        if not lock.acquire():
            raise TimeoutError(f"dial job {job_id} stayed locked for {wait_s}s")
        try:
            yield
        finally:
            # Expired meanwhile: nothing left to release.
            with suppress(redis.exceptions.LockError):
                lock.release()


def is_terminal(job: dict[str, Any]) -> bool:
    return job.get("state") in TERMINAL_STATES
