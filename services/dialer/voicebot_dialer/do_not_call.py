"""The do-not-call list in Redis: numbers (E.164) never dialed, checked before every placement."""

from __future__ import annotations

import redis

from voicebot_core.redis_keys import RedisKeys


class DoNotCallList:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = redis_client
        self._key = keys.do_not_call()

    def add(self, numbers: list[str]) -> int:
        self._redis.sadd(self._key, *numbers)
        return len(numbers)

    def remove(self, number: str) -> bool:
        return bool(self._redis.srem(self._key, number))

    def contains(self, number: str) -> bool:
        return bool(self._redis.sismember(self._key, number))

    def page(self, cursor: int, limit: int) -> tuple[list[str], int | None]:
        """(numbers, next cursor or None at the end)."""
        next_cursor, numbers = self._redis.sscan(self._key, cursor, count=limit)
        return sorted(numbers), int(next_cursor) or None
