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
# ARGV: job id, now, require capacity (1/0), campaign cap (0 none), dry run (1/0), stale-before:
# entries older than this whose call never reached a worker are not counted (their final callback
# was lost; the reconciler ends them); then the head and tail (RedisKeys.around_id) of the worker
# hash, worker calls set and dial job hash keys.
# Returns 1 when the job took a place, 0 when no worker slot, -1 when the campaign cap is hit.
_RESERVE_LUA = """
local job_id, now = ARGV[1], tonumber(ARGV[2])
local worker_head, worker_tail, calls_head, calls_tail = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local job_head, job_tail = ARGV[11], ARGV[12]
if redis.call('ZSCORE', KEYS[2], job_id) then return 1 end
if KEYS[3] ~= '' and tonumber(ARGV[4]) > 0 then
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return -1 end
end
if ARGV[3] == '1' then
  local free = 0
  local call_sets = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local info = redis.call('HMGET', worker_head .. id .. worker_tail, 'capacity', 'draining')
    if info[1] then
      local ckey = calls_head .. id .. calls_tail
      call_sets[#call_sets + 1] = ckey
      if info[2] ~= '1' then
        free = free + tonumber(info[1]) - redis.call('SCARD', ckey)
      end
    end
  end
  local waiting = 0
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[6], '+inf')) do
    local sid = redis.call('HGET', job_head .. other .. job_tail, 'call_sid')
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
if ARGV[5] == '1' then return 1 end
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
        self._key_families = [*keys.around_id(keys.worker), *keys.around_id(keys.worker_calls),
                              *keys.around_id(keys.dial_job)]

    def _run(self, job_id: str, now: float, campaign_id: str, campaign_cap: int, dry_run: bool) -> int:
        return int(self._reserve(
            keys=[self._keys.workers(), self._keys.outbound_active(),
                  self._keys.campaign_active(campaign_id) if campaign_id else ""],
            args=[job_id, now, "1" if self._require else "0", campaign_cap, "1" if dry_run else "0",
                  now - self._stale_after_s, *self._key_families],
        ))

    def reserve(self, job_id: str, now: float, campaign_id: str = "", campaign_cap: int = 0) -> int:
        """1 placed in the active set, 0 no free bot-worker slot, -1 campaign at its cap."""
        return self._run(job_id, now, campaign_id, campaign_cap, dry_run=False)

    def has_worker_room(self) -> bool:
        """Would one more outbound call find a bot-worker slot? (Reserves nothing.)"""
        if not self._require:
            return True
        return self._run("", time.time(), "", 0, dry_run=True) == 1

    def release(self, job_id: str, campaign_id: str = "") -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._keys.outbound_active(), job_id)
            if campaign_id:
                pipe.zrem(self._keys.campaign_active(campaign_id), job_id)
            pipe.execute()

    def outbound_active(self) -> int:
        return int(self._redis.zcard(self._keys.outbound_active()))

    def campaign_active(self, campaign_id: str) -> int:
        return int(self._redis.zcard(self._keys.campaign_active(campaign_id)))

    def silent_since(self, before: float, batch: int) -> list[str]:
        """Jobs holding a place since before `before` (their final callback may be lost)."""
        return self._redis.zrangebyscore(self._keys.outbound_active(), "-inf", before, 0, batch)

    def recheck_later(self, job_id: str, now: float) -> None:
        """Count a held place as fresh again (only while it is still held)."""
        self._redis.zadd(self._keys.outbound_active(), {job_id: now}, xx=True)
