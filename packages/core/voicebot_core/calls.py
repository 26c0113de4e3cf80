"""Call records in Redis: the call hash, its events, transcript and checkpointed history.

The gateway and the bot-worker write a call's record (`CallStore`, asyncio); the dialer's API
reads it (`CallRecordReader`, blocking; so does the demo) and adds events of its own (`CallEventLog`).
`CallRecord` names every field of the call hash, so a writer cannot store a field that no reader knows.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline

from voicebot_core.redis_keys import RedisKeys

CALL_TTL_S = 30 * 24 * 3600  # the default of VOICEBOT_CALL_DATA_RETENTION_DAYS
EVENT_STREAM_MAXLEN = 100_000


class CallRecord(BaseModel):
    """The call hash (`RedisKeys.call`): every value is stored as a string."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    call_sid: str = ""
    direction: str = ""
    from_: str = Field("", alias="from")
    to: str = ""
    agent_profile: str = ""
    status: str = ""  # Twilio's latest call status
    answered_by: str = ""
    dial_job_id: str = ""
    attempt: str = ""
    worker_id: str = ""  # the bot-worker holding the call's slot
    stream_sid: str = ""
    attached_at: str = ""
    outcome: str = ""
    outcome_reason: str = ""
    end_reason: str = ""
    recording: str = ""  # where the bot-worker wrote the stereo recording (caller left, bot right)
    created_at: str = ""
    ended_at: str = ""

    @classmethod
    def from_hash(cls, call_sid: str, raw: dict[str, str]) -> CallRecord:
        return cls.model_validate({**raw, "call_sid": call_sid})


# Field names as stored in the hash ("from", not "from_").
CALL_FIELDS = frozenset((f.alias or name) for name, f in CallRecord.model_fields.items()) - {"call_sid"}


def _encode(fields: dict[str, Any]) -> dict[str, str | int | float]:
    unknown = set(fields) - CALL_FIELDS
    if unknown:
        raise ValueError(f"not a call record field: {', '.join(sorted(unknown))}")
    return {k: ("" if v is None else v if isinstance(v, str | int | float) else json.dumps(v))
            for k, v in fields.items()}


def _stage_event(pipe: Pipeline | AsyncPipeline, keys: RedisKeys, ttl_s: int, call_sid: str, kind: str,
                 data: dict[str, Any]) -> dict[str, Any]:
    """Queue a call event on `pipe` (either client's): on the call's list and on the all-calls stream."""
    event = {"call_sid": call_sid, "kind": kind, "at": time.time(), **data}
    payload = json.dumps(event)
    pipe.rpush(keys.call_events(call_sid), payload)
    pipe.expire(keys.call_events(call_sid), ttl_s)
    pipe.xadd(keys.call_event_stream(), {"event": payload}, maxlen=EVENT_STREAM_MAXLEN, approximate=True)
    return event


class CallStore:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, ttl_s: int = CALL_TTL_S) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s  # the deployment's retention (VOICEBOT_CALL_DATA_RETENTION_DAYS)

    async def upsert(self, call_sid: str, **fields: Any) -> None:
        key = self._keys.call(call_sid)
        clean = _encode(fields)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "created_at", time.time())
            if clean:
                pipe.hset(key, mapping=clean)
            pipe.expire(key, self._ttl_s)
            pipe.zadd(self._keys.calls_index(), {call_sid: time.time()}, nx=True)
            await pipe.execute()

    async def record(self, call_sid: str) -> CallRecord | None:
        raw = await self._redis.hgetall(self._keys.call(call_sid))
        return CallRecord.from_hash(call_sid, raw) if raw else None

    async def worker_of(self, call_sid: str) -> str | None:
        """The bot-worker the call is attached to now (the last one to attach)."""
        return await self._redis.hget(self._keys.call(call_sid), "worker_id")

    async def add_event(self, call_sid: str, kind: str, **data: Any) -> dict[str, Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            event = _stage_event(pipe, self._keys, self._ttl_s, call_sid, kind, data)
            await pipe.execute()
        return event

    async def events(self, call_sid: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in await self._redis.lrange(self._keys.call_events(call_sid), 0, -1)]

    async def save_transcript(self, call_sid: str, transcript: list[dict[str, Any]]) -> None:
        await self._redis.set(self._keys.call_transcript(call_sid), json.dumps(transcript), ex=self._ttl_s)

    async def transcript(self, call_sid: str) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(self._keys.call_transcript(call_sid))
        return json.loads(raw) if raw else None

    async def checkpoint_context(self, call_sid: str, messages: list[dict[str, Any]]) -> None:
        await self._redis.set(self._keys.call_context(call_sid), json.dumps(messages), ex=self._ttl_s)

    async def load_context(self, call_sid: str) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(self._keys.call_context(call_sid))
        return json.loads(raw) if raw else None


class CallRecordReader:
    """Blocking reads of call records, for the dialer's API (which runs on sync Redis)."""

    def __init__(self, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = redis_client
        self._keys = keys

    def record(self, call_sid: str) -> CallRecord | None:
        raw = self._redis.hgetall(self._keys.call(call_sid))
        return CallRecord.from_hash(call_sid, raw) if raw else None

    def transcript(self, call_sid: str) -> list[dict[str, Any]] | None:
        raw = self._redis.get(self._keys.call_transcript(call_sid))
        return json.loads(raw) if raw else None

    def events(self, call_sid: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self._redis.lrange(self._keys.call_events(call_sid), 0, -1)]

    def newest_sids(self, offset: int, count: int, since: float | None = None,
                    until: float | None = None) -> list[str]:
        """Call SIDs of the calls index, newest first, created within [since, until] (unix seconds)."""
        return self._redis.zrevrangebyscore(self._keys.calls_index(), "+inf" if until is None else until,
                                            "-inf" if since is None else since, start=offset, num=count)

    def records(self, call_sids: list[str]) -> list[CallRecord | None]:
        """The records of `call_sids`, in order (None for one expired since it was listed)."""
        with self._redis.pipeline(transaction=False) as pipe:
            for call_sid in call_sids:
                pipe.hgetall(self._keys.call(call_sid))
            raws = pipe.execute()
        return [CallRecord.from_hash(sid, raw) if raw else None for sid, raw in zip(call_sids, raws, strict=True)]

    def context(self, call_sid: str) -> list[dict[str, Any]]:
        """The conversation history as last checkpointed (empty before the first turn)."""
        raw = self._redis.get(self._keys.call_context(call_sid))
        return json.loads(raw) if raw else []


class CallEventLog:
    """Blocking writes of call events, for the dialer's API (a hang-up it asked Twilio for)."""

    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, ttl_s: int = CALL_TTL_S) -> None:
        self._redis = redis_client
        self._keys = keys
        self._ttl_s = ttl_s

    def add_event(self, call_sid: str, kind: str, **data: Any) -> dict[str, Any]:
        with self._redis.pipeline(transaction=False) as pipe:
            event = _stage_event(pipe, self._keys, self._ttl_s, call_sid, kind, data)
            pipe.execute()
        return event
