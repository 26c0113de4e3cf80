"""Call records in Redis: the call hash, its events, transcript and checkpointed history."""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from voicebot_core.redis_keys import RedisKeys

CALL_TTL_S = 30 * 24 * 3600
EVENT_STREAM_MAXLEN = 100_000

OUTCOMES = ("completed", "busy", "no-answer", "failed", "machine", "transferred", "canceled", "rejected")


class CallStore:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def upsert(self, call_sid: str, **fields: Any) -> None:
        key = self._keys.call(call_sid)
        clean = {k: ("" if v is None else v if isinstance(v, str | int | float) else json.dumps(v))
                 for k, v in fields.items()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "created_at", time.time())
            if clean:
                pipe.hset(key, mapping=clean)
            pipe.expire(key, CALL_TTL_S)
            pipe.zadd(self._keys.calls_index(), {call_sid: time.time()}, nx=True)
            await pipe.execute()

    async def get(self, call_sid: str) -> dict[str, str]:
        return await self._redis.hgetall(self._keys.call(call_sid))

    async def add_event(self, call_sid: str, kind: str, **data: Any) -> dict[str, Any]:
        event = {"call_sid": call_sid, "kind": kind, "at": time.time(), **data}
        payload = json.dumps(event)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._keys.call_events(call_sid), payload)
            pipe.expire(self._keys.call_events(call_sid), CALL_TTL_S)
            pipe.xadd(self._keys.call_event_stream(), {"event": payload},
                      maxlen=EVENT_STREAM_MAXLEN, approximate=True)
            await pipe.execute()
        return event

    async def events(self, call_sid: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in await self._redis.lrange(self._keys.call_events(call_sid), 0, -1)]

    async def save_transcript(self, call_sid: str, transcript: list[dict[str, Any]]) -> None:
        await self._redis.set(self._keys.call_transcript(call_sid), json.dumps(transcript), ex=CALL_TTL_S)

    async def transcript(self, call_sid: str) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(self._keys.call_transcript(call_sid))
        return json.loads(raw) if raw else None

    async def checkpoint_context(self, call_sid: str, messages: list[dict[str, Any]]) -> None:
        await self._redis.set(self._keys.call_context(call_sid), json.dumps(messages), ex=CALL_TTL_S)

    async def load_context(self, call_sid: str) -> list[dict[str, Any]] | None:
        raw = await self._redis.get(self._keys.call_context(call_sid))
        return json.loads(raw) if raw else None
