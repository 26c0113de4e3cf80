"""Event webhooks waiting for their next attempt, kept in Redis so that worker restarts lose none.

`webhook-due` (sorted set: event id -> when the next attempt is due) and `webhook-deliveries`
(hash: event id -> JSON {url, event, first_at, retry}). Every worker's dispatch loop claims the
due ones and queues a delivery task for each. A claim is a lease (the due time moves on by
`lease_s`): a task lost with its worker is queued again when the lease ends.

Why not Celery countdowns: on the Redis broker a worker holds every countdown task unacked in
memory, and one not run within the broker's visibility timeout (300 s) is delivered once more.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import redis

from voicebot_core.redis_keys import RedisKeys

# KEYS: due set, deliveries hash. ARGV: now, lease end, batch size.
_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = record
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: due set, deliveries hash. ARGV: event id, retry the caller attempted, new record, due.
# Only the attempt the stored record names may schedule the next (a duplicate task may not).
_SCHEDULE_LUA = """
local current = redis.call('HGET', KEYS[2], ARGV[1])
local attempted = tonumber(ARGV[2])
if attempted > 0 and (not current or cjson.decode(current).retry ~= attempted) then return 0 end
if attempted == 0 and current then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
"""


class PendingDelivery(TypedDict):
    """Keyword arguments of the delivery task for one more attempt."""

    url: str
    event: dict[str, Any]
    first_at: float
    retry: int


class WebhookOutbox:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = redis_client
        self._due = keys.webhook_due()
        self._deliveries = keys.webhook_deliveries()
        self._claim = redis_client.register_script(_CLAIM_LUA)
        self._schedule = redis_client.register_script(_SCHEDULE_LUA)

    def schedule(self, delivery: PendingDelivery, attempted_retry: int, due_at: float) -> bool:
        """Keep `delivery` for an attempt at `due_at`; False when attempt `attempted_retry` was
        not the event's latest (its delivery was taken over by another task)."""
        event_id = delivery["event"]["event_id"]
        return bool(self._schedule(keys=[self._due, self._deliveries],
                                   args=[event_id, attempted_retry, json.dumps(delivery), due_at]))

    def claim_due(self, now: float, lease_s: float, limit: int = 100) -> list[PendingDelivery]:
        """Deliveries due by `now`, each leased until `now + lease_s`."""
        return [json.loads(record) for record in
                self._claim(keys=[self._due, self._deliveries], args=[now, now + lease_s, limit])]

    def is_current(self, event_id: str, retry: int) -> bool:
        """Retry `retry` of the event is still the one to attempt (not delivered, given up or superseded)."""
        record = self._redis.hget(self._deliveries, event_id)
        return record is not None and json.loads(record)["retry"] == retry

    def done(self, event_id: str) -> None:
        """Delivered or given up: no more attempts."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._deliveries, event_id)
            pipe.zrem(self._due, event_id)
            pipe.execute()

    def pending(self) -> int:
        return int(self._redis.zcard(self._due))
