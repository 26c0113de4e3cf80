"""Calls-per-second limits shared by every Celery worker, kept in Redis.

Each placement takes one token from every scope it belongs to (the account, its caller-ID number,
its campaign). A token stays in a scope's sorted set for `window_s` (1 s plus a safety margin), so
no span of that length ever holds more grants than the per-second limit, whatever the number of
workers; Redis TIME is the only clock. A refused request learns exactly how long until the next
token frees, so a waiting worker sleeps that long and no more (no idle gaps while work is queued).
A `Grant` knows its age, so a request not sent soon enough after it can take a fresh one (`renew`).
"""

from __future__ import annotations

import math
import time
import uuid
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


@dataclass(frozen=True)
class Grant:
    token_id: str
    scopes: tuple[RateScope, ...]
    at: float  # Redis time of the grant, unix s
    asked_at: float  # time.monotonic() before the granting request left: the grant is at most age() old

    def age(self) -> float:
        return time.monotonic() - self.asked_at


def _limit_and_hold_ms(cps: float, window_s: float) -> tuple[int, int]:
    """Integer tokens per second, each held `window_s` (1 s plus the margin): 2.5 CPS allows 2
    (never more); 0.5 allows 1 per 2 s (plus the margin)."""
    margin_s = window_s - 1.0
    if cps >= 1:
        return math.floor(cps), round(window_s * 1000)
    return 1, round((1 / cps + margin_s) * 1000)


class RateLimiter:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, window_s: float = 1.0) -> None:
        """`window_s`: how long a token counts, at least the 1 s the limits are per."""
        self._redis = redis_client
        self._keys = keys
        self._window_s = window_s
        self._take = redis_client.register_script(_TAKE_LUA)

    def try_take(self, token_id: str, scopes: list[RateScope] | tuple[RateScope, ...]) -> Grant | float:
        """The grant, or seconds to wait before asking again."""
        args: list[str | int] = [token_id]
        for scope in scopes:
            args.extend(_limit_and_hold_ms(scope.calls_per_second, self._window_s))
        asked_at = time.monotonic()
        granted, value = self._take(keys=[self._keys.rate_bucket(s.name) for s in scopes], args=args)
        if int(granted):
            return Grant(token_id, tuple(scopes), int(value) / 1000, asked_at)
        return int(value) / 1000

    def take(self, token_id: str, scopes: list[RateScope] | tuple[RateScope, ...], max_wait_s: float) -> Grant | float:
        """Block until a token is granted (the grant) or `max_wait_s` would pass (seconds to wait)."""
        deadline = time.monotonic() + max_wait_s
        while True:
            got = self.try_take(token_id, scopes)
            if isinstance(got, Grant):
                return got
            if time.monotonic() + got > deadline:
                return got
            time.sleep(got)

    def renew(self, grant: Grant, max_age_s: float, max_wait_s: float) -> Grant | float:
        """`grant` while at most `max_age_s` old, else a fresh token from the same scopes (the old one
        stays spent, which only errs on the safe side)."""
        if grant.age() <= max_age_s:
            return grant
        return self.take(f"{grant.token_id}/{uuid.uuid4().hex[:8]}", grant.scopes, max_wait_s)
