"""Capacity-aware placement: a call is placed only when a bot-worker slot will be there for it.

Outbound calls that ring (or are answered but have not reached a worker yet) hold no registry
slot, so one Lua script counts them against the registry's free slots: it sums capacity minus
held slots over live, non-draining workers and subtracts our outbound jobs whose call does not
hold a slot yet. The same script applies the campaign's concurrency cap, so two Celery workers
can never both take the last slot.
"""

from __future__ import annotations

import time

import redis

from voicebot_core.redis_keys import RedisKeys

# KEYS[1] workers zset, KEYS[2] outbound-active zset, KEYS[3] campaign active zset ('' none).
# ARGV: prefix, job id, now, require capacity (1/0), campaign cap (0 none), dry run (1/0),
# stale-before: entries older than this whose call never reached a worker are not counted (their
# final callback was lost; the reconciler ends them).
# Returns 1 when the job took a place, 0 when no worker slot, -1 when the campaign cap is hit.
_RESERVE_LUA = """
local prefix, job_id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[2], job_id) then return 1 end
if KEYS[3] ~= '' and tonumber(ARGV[5]) > 0 then
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return -1 end
end
if ARGV[4] == '1' then
  local free = 0
  local call_sets = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local wkey = prefix .. ':worker:' .. id
    local info = redis.call('HMGET', wkey, 'capacity', 'draining')
    if info[1] then
      call_sets[#call_sets + 1] = wkey .. ':calls'
      if info[2] ~= '1' then
        free = free + tonumber(info[1]) - redis.call('SCARD', wkey .. ':calls')
      end
    end
  end
  local waiting = 0
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[7], '+inf')) do
    local sid = redis.call('HGET', prefix .. ':dial-job:' .. other, 'call_sid')
    local attached = false
    if sid and sid ~= '' then
      for _, ckey in ipairs(call_sets) do
        if redis.call('SISMEMBER', ckey, sid) == 1 then attached = true break end
      end
    end
    if not attached then waiting = waiting + 1 end
  end
  if waiting >= free then return 0 end
end
if ARGV[6] == '1' then return 1 end
redis.call('ZADD', KEYS[2], now, job_id)
if KEYS[3] ~= '' then redis.call('ZADD', KEYS[3], now, job_id) end
return 1
"""


class CapacityGate:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, require_worker_slot: bool = True,
                 stale_after_s: float = 180.0) -> None:
        self._redis = redis_client
        self._stale_after_s = stale_after_s
        self._keys = keys
        self._require = require_worker_slot
        self._reserve = redis_client.register_script(_RESERVE_LUA)

    def reserve(self, job_id: str, now: float, campaign_id: str = "", campaign_cap: int = 0) -> int:
        """1 placed in the active set, 0 no free bot-worker slot, -1 campaign at its cap."""
        return int(self._reserve(
            keys=[self._keys.workers(), self._keys.outbound_active(),
                  self._keys.campaign_active(campaign_id) if campaign_id else ""],
            args=[self._keys.prefix, job_id, now, "1" if self._require else "0", campaign_cap, "0",
                  now - self._stale_after_s],
        ))

    def has_worker_room(self) -> bool:
        """Would one more outbound call find a bot-worker slot? (Reserves nothing.)"""
        if not self._require:
            return True
        now = time.time()
        return int(self._reserve(keys=[self._keys.workers(), self._keys.outbound_active(), ""],
                                 args=[self._keys.prefix, "", now, "1", 0, "1", now - self._stale_after_s])) == 1

    def release(self, job_id: str, campaign_id: str = "") -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._keys.outbound_active(), job_id)
            if campaign_id:
                pipe.zrem(self._keys.campaign_active(campaign_id), job_id)
            pipe.execute()

    def outbound_active(self) -> int:
        return int(self._redis.zcard(self._keys.outbound_active()))
