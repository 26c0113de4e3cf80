"""One way to open Redis connections, so every service decodes replies the same way."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


def connect_sync(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
