"""Calls-per-second limits shared by every Celery worker, kept in Redis.

Each placement takes one token from every scope it belongs to (the account, its caller-ID number,
its campaign). A token stays in a scope's sorted set for one window, so no window of that length
ever holds more tokens than the limit, whatever the number of workers; Redis TIME is the only
clock. A refused request learns exactly how long until the next token frees, so a waiting worker
sleeps that long and no more (no idle gaps while work is queued).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis

from voicebot_core.redis_keys import RedisKeys

# KEYS: one sorted set per scope. ARGV[1] = token id, ARGV[2+2i-1], ARGV[2+2i] = limit and
# window (ms) of KEYS[i]. Returns {1, now_ms} when granted (taken from all scopes) or {0, wait_ms}.
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now + 1
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, wait} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]) * 2)
end
return {1, now}
"""


@dataclass(frozen=True)
class RateScope:
    name: str  # "account", "from:+1555…", "campaign:{id}"
    calls_per_second: float


def _limit_and_window_ms(cps: float, window_s: float) -> tuple[int, int]:
    """Integer tokens per window: 2.5 CPS allows 2 per second (never more); 0.5 allows 1 per 2 s."""
    if cps >= 1:
        return math.floor(cps * window_s) or 1, round(window_s * 1000)
    return 1, round(window_s * 1000 / cps)


class RateLimiter:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, window_s: float = 1.0) -> None:
        self._redis = redis_client
        self._keys = keys
        self._window_s = window_s
        self._take = redis_client.register_script(_TAKE_LUA)

    def try_take(self, token_id: str, scopes: list[RateScope]) -> tuple[bool, float]:
        """(True, granted_at unix s) or (False, seconds to wait before asking again)."""
        args: list[str | int] = [token_id]
        for scope in scopes:
            args.extend(_limit_and_window_ms(scope.calls_per_second, self._window_s))
        granted, value = self._take(keys=[self._keys.rate_bucket(s.name) for s in scopes], args=args)
        return (True, int(value) / 1000) if int(granted) else (False, int(value) / 1000)

    def take(self, token_id: str, scopes: list[RateScope], max_wait_s: float) -> tuple[bool, float]:
        """Block until a token is granted (True, granted_at) or `max_wait_s` would pass (False, wait)."""
        deadline = time.monotonic() + max_wait_s
        while True:
            granted, value = self.try_take(token_id, scopes)
            if granted:
                return True, value
            if time.monotonic() + value > deadline:
                return False, value
            time.sleep(value)
