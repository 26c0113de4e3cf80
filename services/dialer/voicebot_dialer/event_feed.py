"""The dial event stream for `GET /v1/events`: asyncio Redis, so long polls hold no thread."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from voicebot_core.redis_keys import RedisKeys


class DialEventFeed:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def latest_id(self) -> str:
        """Stream id of the newest event ('0-0' when there is none)."""
        last = await self._redis.xrevrange(self._keys.dial_event_stream(), count=1)
        return last[0][0] if last else "0-0"

    async def read(self, after: str, count: int, block_ms: int | None) -> list[tuple[str, dict[str, Any]]]:
        """(stream id, event) pairs after `after`, waiting up to `block_ms` (None: no wait) for one."""
        stream = self._keys.dial_event_stream()
        reply = await self._redis.xread({stream: after}, count=count, block=block_ms)
        return [(entry_id, json.loads(data["event"])) for _, entries in reply or [] for entry_id, data in entries]

    async def in_campaign(self, campaign_id: str, job_id: str) -> bool:
        return bool(await self._redis.sismember(self._keys.campaign_jobs(campaign_id), job_id))

    async def aclose(self) -> None:
        await self._redis.aclose()
