"""Bot-worker registry in Redis.

Each worker keeps a hash (address, capacity, draining) alive with a heartbeat TTL and owns a
set of the call SIDs holding one of its slots. The gateway reserves a slot with one Lua script,
so two gateways can never hand out the same last slot. Sets (not counters) make release
idempotent: the gateway and the worker may both release a call without drifting the count.

The dialer places an outbound call only when a slot will be there for it, and holds that place
(`outbound-active`, voicebot_dialer.capacity) until the call ends; while the call rings, or is
answered but not on a worker yet, no worker's set has it. The reservation counts those holds as
the dialer does, so a slot promised to an outbound call is not given to another call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from voicebot_core.redis_keys import RedisKeys

# The dialer's default stale window (dialer_ring_timeout_s 30 + 120 s): a hold older than this
# whose call never reached a worker lost its final callback; the dialer no longer counts it.
OUTBOUND_HOLD_S = 150.0

# KEYS[1] = workers zset, KEYS[2] = outbound-active zset (dial job id -> when its place was taken).
# ARGV: call_sid, holds counted from (unix seconds), the call's own dial job id (or ""), preferred
# worker id (or ""), then the head and tail (RedisKeys.around_id) of the worker hash, worker calls
# set and dial job hash keys, then worker ids to skip (ones that just refused or failed this call).
# Picks the live, non-draining worker with most free slots (preferred one first when it has
# room), adds the call to its set and returns {worker_id, address}; {} when none is free, or when
# the free slots (of the workers it may pick) are all promised to outbound calls that are not on a
# worker yet: those whose call SID is in no live worker's set, the call's own hold not counted.
_RESERVE_LUA = """
local call_sid, holds_from, own_job, preferred = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local worker_head, worker_tail, calls_head, calls_tail = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local job_head, job_tail = ARGV[9], ARGV[10]
local skip = {}
for i = 11, #ARGV do skip[ARGV[i]] = true end
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local best_id, best_addr, best_free = nil, nil, 0
local free = 0
local call_sets = {}
for _, id in ipairs(ids) do
  local wkey = worker_head .. id .. worker_tail
  local info = redis.call('HMGET', wkey, 'address', 'capacity', 'draining')
  if not info[1] then
    redis.call('ZREM', KEYS[1], id)
  else
    local ckey = calls_head .. id .. calls_tail
    call_sets[#call_sets + 1] = ckey
    if info[3] ~= '1' and not skip[id] then
      if redis.call('SISMEMBER', ckey, call_sid) == 1 then
        return {id, info[1]}
      end
      local slots = tonumber(info[2]) - redis.call('SCARD', ckey)
      if slots > 0 then
        free = free + slots
        if id == preferred then
          best_id, best_addr, best_free = id, info[1], 1e9
        elseif slots > best_free then
          best_id, best_addr, best_free = id, info[1], slots
        end
      end
    end
  end
end
if not best_id then return {} end
local waiting = 0
for _, job in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], holds_from, '+inf')) do
  if job ~= own_job then
    local sid = redis.call('HGET', job_head .. job .. job_tail, 'call_sid')
    local attached = sid == call_sid
    if sid and sid ~= '' then
      for _, ckey in ipairs(call_sets) do
        if attached then break end
        attached = redis.call('SISMEMBER', ckey, sid) == 1
      end
    end
    if not attached then
      waiting = waiting + 1
      if waiting >= free then return {} end
    end
  end
end
redis.call('SADD', calls_head .. best_id .. calls_tail, call_sid)
return {best_id, best_addr}
"""


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    address: str
    capacity: int
    active_calls: int
    draining: bool
    last_heartbeat: float
    started_at: float | None = None

    @property
    def free_slots(self) -> int:
        return 0 if self.draining else max(0, self.capacity - self.active_calls)


@dataclass(frozen=True)
class Reservation:
    worker_id: str
    address: str


class WorkerRegistry:
    """Register, heartbeat and reserve bot-worker slots."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, heartbeat_ttl_s: float = 10.0,
                 outbound_hold_s: float = OUTBOUND_HOLD_S) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(heartbeat_ttl_s * 1000)
        self._outbound_hold_s = outbound_hold_s  # as the dialer's stale window (stale_call_s)
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._key_families = [*keys.around_id(keys.worker), *keys.around_id(keys.worker_calls),
                              *keys.around_id(keys.dial_job)]

    # worker side
    async def register(self, worker_id: str, address: str, capacity: int) -> None:
        wkey = self._keys.worker(worker_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(wkey, self._keys.worker_calls(worker_id))
            pipe.hset(
                wkey,
                mapping={"address": address, "capacity": capacity, "draining": 0, "started_at": time.time()},
            )
            pipe.pexpire(wkey, self._ttl_ms)
            pipe.zadd(self._keys.workers(), {worker_id: time.time()})
            await pipe.execute()

    async def heartbeat(self, worker_id: str, live_call_sids: set[str] | None = None) -> None:
        """Renew the TTL. Passing the worker's live calls is not needed: slots are held by
        reservations until the worker or gateway releases them."""
        wkey = self._keys.worker(worker_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.pexpire(wkey, self._ttl_ms)
            pipe.pexpire(self._keys.worker_calls(worker_id), self._ttl_ms * 360)
            pipe.zadd(self._keys.workers(), {worker_id: time.time()})
            renewed, _, _ = await pipe.execute()
        if not renewed:
            raise LookupError(f"worker {worker_id} expired from the registry")

    async def set_draining(self, worker_id: str, draining: bool = True) -> None:
        await self._redis.hset(self._keys.worker(worker_id), "draining", int(draining))

    async def deregister(self, worker_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.worker(worker_id), self._keys.worker_calls(worker_id))
            pipe.zrem(self._keys.workers(), worker_id)
            await pipe.execute()

    # gateway side
    async def reserve(
        self, call_sid: str, preferred_worker_id: str = "", skip: set[str] | frozenset[str] = frozenset(),
        dial_job_id: str = "",
    ) -> Reservation | None:
        """A slot for the call, None when no worker is free for it. `dial_job_id`: the outbound
        call's dial job, whose own hold the call may use; other calls may not take held slots."""
        result = await self._reserve(
            keys=[self._keys.workers(), self._keys.outbound_active()],
            args=[call_sid, time.time() - self._outbound_hold_s, dial_job_id, preferred_worker_id,
                  *self._key_families, *sorted(skip)],
        )
        if not result:
            return None
        worker_id, address = (v.decode() if isinstance(v, bytes) else v for v in result)
        return Reservation(worker_id=worker_id, address=address)

    async def hold(self, worker_id: str, call_sids: set[str]) -> None:
        """Re-claim slots for calls the worker already runs (after its entry expired)."""
        if call_sids:
            await self._redis.sadd(self._keys.worker_calls(worker_id), *call_sids)

    async def address(self, worker_id: str) -> str | None:
        """The worker's stream address, None once it left the registry."""
        return await self._redis.hget(self._keys.worker(worker_id), "address")

    async def release(self, worker_id: str, call_sid: str) -> None:
        await self._redis.srem(self._keys.worker_calls(worker_id), call_sid)

    async def list_workers(self) -> list[WorkerInfo]:
        workers: list[WorkerInfo] = []
        for raw_id, score in await self._redis.zrange(self._keys.workers(), 0, -1, withscores=True):
            worker_id = _text(raw_id)
            info = await self._redis.hgetall(self._keys.worker(worker_id))
            active = await self._redis.scard(self._keys.worker_calls(worker_id))
            if info:
                workers.append(_worker_info(worker_id, score, info, active))
        return workers

    async def free_slots(self) -> int:
        return sum(w.free_slots for w in await self.list_workers())


class WorkerRegistryReader:
    """Blocking reads of the registry, for the dialer's API (which runs on sync Redis)."""

    def __init__(self, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = redis_client
        self._keys = keys

    def list_workers(self) -> list[WorkerInfo]:
        """Registered workers, longest silent first (by last heartbeat)."""
        ids = [(_text(raw_id), score) for raw_id, score in
               self._redis.zrange(self._keys.workers(), 0, -1, withscores=True)]
        with self._redis.pipeline(transaction=False) as pipe:
            for worker_id, _ in ids:
                pipe.hgetall(self._keys.worker(worker_id))
                pipe.scard(self._keys.worker_calls(worker_id))
            replies = pipe.execute()
        return [_worker_info(worker_id, score, info, active)
                for (worker_id, score), info, active in zip(ids, replies[::2], replies[1::2], strict=True)
                if info]  # an expired hash: the worker stopped heartbeating (reserve drops it from the zset)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _worker_info(worker_id: str, heartbeat: float, raw: dict[str | bytes, str | bytes], active: int) -> WorkerInfo:
    """A worker hash (`RedisKeys.worker`) as read by either client."""
    info = {_text(k): _text(v) for k, v in raw.items()}
    return WorkerInfo(
        worker_id=worker_id,
        address=info["address"],
        capacity=int(info["capacity"]),
        active_calls=int(active),
        draining=info.get("draining") == "1",
        last_heartbeat=float(heartbeat),
        started_at=float(info["started_at"]) if info.get("started_at") else None,
    )
