"""The dial event stream for `GET /v1/events`: asyncio Redis, so long polls hold no thread."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from voicebot_core.redis_keys import RedisKeys

# '<ms>-<seq>' or '<ms>' (at most 19 digits each: Redis ids are unsigned 64-bit), or empty.
STREAM_ID_PATTERN = r"^([0-9]{1,19}(-[0-9]{1,19})?)?$"
# Longest single blocking XREAD; a long poll is made of several (see `read`).
MAX_BLOCK_S = 5.0


class DialEventFeed:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        # A blocking read longer than the connection's socket timeout fails with redis' TimeoutError
        # however healthy Redis is; so each read blocks for less. The timeout is redis-py's default
        # (5 s) or the REDIS_URL's socket_timeout: read it off an unconnected connection.
        socket_timeout = redis.connection_pool.make_connection().socket_timeout
        self.max_block_s = min(MAX_BLOCK_S, 0.8 * socket_timeout) if socket_timeout else MAX_BLOCK_S

    @property
    def redis(self) -> aioredis.Redis:
        """The API's asyncio client, shared with its other async routes (routes_call_records)."""
        return self._redis

    async def latest_id(self) -> str:
        """Stream id of the newest event ('0-0' when there is none)."""
        last = await self._redis.xrevrange(self._keys.dial_event_stream(), count=1)
        return last[0][0] if last else "0-0"

    async def read(self, after: str, count: int, wait_s: float) -> list[tuple[str, dict[str, Any]]]:
        """(stream id, event) pairs after `after`, waiting up to `wait_s` (0: no wait), capped at
        `max_block_s`, for one. An empty list is not the end: read again."""
        stream = self._keys.dial_event_stream()
        block_ms = max(1, int(min(wait_s, self.max_block_s) * 1000)) if wait_s > 0 else None
        reply = await self._redis.xread({stream: after}, count=count, block=block_ms)
        return [(entry_id, json.loads(data["event"])) for _, entries in reply or [] for entry_id, data in entries]

    async def in_campaign(self, campaign_id: str, job_id: str) -> bool:
        return bool(await self._redis.sismember(self._keys.campaign_jobs(campaign_id), job_id))

    async def aclose(self) -> None:
        await self._redis.aclose()
