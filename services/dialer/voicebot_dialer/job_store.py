"""Dial jobs in Redis: the job hash, its events, the indexes the API lists, per-job locks.

The hash layout and its codec are core's (`voicebot_core.dial_jobs`): the gateway and the
bot-worker read jobs through `DialJobReader`; the dialer is the only writer, through this store.
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
from redis.client import Pipeline

from voicebot_core.dial_jobs import decode_job, encode_fields
from voicebot_core.redis_client import ReplicaAck
from voicebot_core.redis_keys import RedisKeys

JOB_TTL_S = 30 * 24 * 3600
IDEMPOTENCY_TTL_S = 24 * 3600
EVENT_STREAM_MAXLEN = 100_000

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


def new_event_id() -> str:
    """Names one event for good: webhook receivers drop repeats of an id they have seen."""
    return "ev_" + uuid.uuid4().hex


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class JobStore:
    """`replica_ack`: creating a job and changing its state (before a call is placed, say) wait for a
    replica to hold the write, so a Sentinel failover right after cannot undo it (ReplicaAck)."""

    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, replica_ack: ReplicaAck | None = None) -> None:
        self._redis = redis_client
        self._keys = keys
        self._create = redis_client.register_script(_CREATE_LUA)
        self._replica_ack = replica_ack

    def ping(self) -> bool:
        return bool(self._redis.ping())

    # creation
    def create(self, fields: dict[str, Any], due_at: float, idempotency_key: str | None = None,
               fingerprint: str = "") -> tuple[str, bool]:
        """Store a new job and schedule it; with a repeated idempotency key return the first job."""
        job_id = fields.get("id") or new_job_id()
        now = time.time()
        record = encode_fields({**fields, "id": job_id, "created_at": now, "updated_at": now,
                                "due_at": due_at})
        flat = [item for pair in record.items() for item in pair]
        idem_key = self._keys.idempotency(hashlib.sha256(idempotency_key.encode()).hexdigest()) \
            if idempotency_key else ""
        campaign_id = fields.get("campaign_id") or ""
        with self._redis.pipeline(transaction=False) as pipe:
            self._create(
                keys=[idem_key, self._keys.dial_job(job_id), self._keys.dial_jobs_index(),
                      self._keys.dial_schedule(), self._keys.campaign_jobs(campaign_id) if campaign_id else ""],
                args=[job_id, due_at, now, IDEMPOTENCY_TTL_S, fingerprint, *flat], client=pipe,
            )
            result = self._execute_acked(pipe, f"dial job {job_id} created")[0]
        stored_id, created, stored_fingerprint = result[0], int(result[1]), result[2]
        if not created and stored_fingerprint != fingerprint:
            raise IdempotencyConflict(stored_id)
        return stored_id, bool(created)

    def stage(self, pipe: Pipeline, fields: dict[str, Any], due_at: float, now: float) -> None:
        """Queue the writes of one new, scheduled job on `pipe` (a campaign creates all in one MULTI)."""
        job_id = fields["id"]
        pipe.hset(self._keys.dial_job(job_id), mapping=encode_fields(
            {**fields, "created_at": now, "updated_at": now, "due_at": due_at}))
        pipe.zadd(self._keys.dial_jobs_index(), {job_id: now})
        pipe.zadd(self._keys.dial_schedule(), {job_id: due_at})
        if fields.get("campaign_id"):
            pipe.sadd(self._keys.campaign_jobs(fields["campaign_id"]), job_id)

    # reads
    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self._redis.hgetall(self._keys.dial_job(job_id))
        return decode_job(raw) if raw else None

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self._redis.lrange(self._keys.dial_job_events(job_id), 0, -1)]

    def states(self, job_ids: list[str]) -> list[str]:
        return self._field_of(job_ids, "state")

    def campaign_ids(self, job_ids: list[str]) -> list[str]:
        """The campaign of each job ('' for none, for an unknown job and for an empty id)."""
        return self._field_of(job_ids, "campaign_id")

    def _field_of(self, job_ids: list[str], name: str) -> list[str]:
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self._keys.dial_job(job_id), name)
            return [v or "" for v in pipe.execute()]

    def webhook_targets(self, job_ids: list[str]) -> list[dict[str, Any]]:
        """id, webhook_url, metadata and attempt of many jobs in one round trip (bulk notifications)."""
        names = ("webhook_url", "metadata", "attempt")
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._keys.dial_job(job_id), *names)
            rows = pipe.execute()
        return [decode_job({"id": job_id, **{n: v or "" for n, v in zip(names, row, strict=True)}})
                for job_id, row in zip(job_ids, rows, strict=True)]

    def list_ids(self, offset: int, count: int) -> list[str]:
        return self._redis.zrevrange(self._keys.dial_jobs_index(), offset, offset + count - 1)

    # writes
    def update(self, job_id: str, **fields: Any) -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._keys.dial_job(job_id), mapping=encode_fields({**fields, "updated_at": time.time()}))
            self._execute_acked(pipe, f"dial job {job_id} {fields.get('state') or 'update'}")

    def _execute_acked(self, pipe: Pipeline, what: str) -> list[Any]:
        """Run `pipe`, then (with a replica_ack) WAIT on its connection for a replica to hold it."""
        if self._replica_ack is None or not self._replica_ack.add(pipe):
            return pipe.execute()
        *results, acked = pipe.execute()
        self._replica_ack.check(int(acked), what)
        return results

    def add_event(self, job_id: str, kind: str, **data: Any) -> dict[str, Any]:
        event = {"event_id": new_event_id(), "dial_job_id": job_id, "kind": kind, "at": time.time(), **data}
        payload = json.dumps(event)
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._keys.dial_job_events(job_id), payload)
            pipe.expire(self._keys.dial_job_events(job_id), JOB_TTL_S)
            pipe.xadd(self._keys.dial_event_stream(), {"event": payload}, maxlen=EVENT_STREAM_MAXLEN,
                      approximate=True)
            pipe.execute()
        return event

    # status callbacks repeat: each is applied once
    def first_delivery(self, job_id: str, fingerprint: str) -> bool:
        """Record a callback's fingerprint; False when it was recorded before."""
        key = self._keys.dial_job_seen(job_id)
        if not self._redis.sadd(key, fingerprint):
            return False
        self._redis.expire(key, JOB_TTL_S)
        return True

    def forget_delivery(self, job_id: str, fingerprint: str) -> None:
        """The callback was not applied after all: its redelivery must not look repeated."""
        self._redis.srem(self._keys.dial_job_seen(job_id), fingerprint)

    @contextmanager
    def locked(self, job_id: str, wait_s: float = 15.0) -> Iterator[None]:
        """Serialise state changes of one job across processes (callbacks race each other).
        Holders never call Twilio inside; the lock expires after 5 s if its holder was killed."""
        lock = self._redis.lock(self._keys.dial_job_lock(job_id), timeout=5.0, blocking_timeout=wait_s)
        if not lock.acquire():
            raise TimeoutError(f"dial job {job_id} stayed locked for {wait_s}s")
        try:
            yield
        finally:
            # Expired meanwhile: nothing left to release.
            with suppress(redis.exceptions.LockError):
                lock.release()
