"""Where a dial job waits on its way to a call, in Redis sorted sets and sets.

schedule (due time) -> dispatched (a placement task is queued; lease expiry) -> placing (the
REST call started; crash reconciliation). A campaign's jobs may instead wait for a free place
under its concurrency cap (waiting) or for the campaign to resume (parked).
"""

from __future__ import annotations

import redis

from voicebot_core.redis_keys import RedisKeys

# KEYS[1] schedule, KEYS[2] dispatched, KEYS[3] holders. ARGV: now, lease until, max in flight, batch.
# Expired leases go back to the schedule (their task was lost, or its worker died); then due jobs
# move to 'dispatched' while fewer than max are queued, with no holder until a worker receives the
# task. One script, so two workers never claim one job.
_CLAIM_LUA = """
local now = tonumber(ARGV[1])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local room = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2])
if room <= 0 then return {} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, math.min(room, tonumber(ARGV[4])))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
end
return ids
"""

# KEYS[1] placing. ARGV: job id, stuck before, new score. Claims a stuck placement for one
# reconciler and keeps it in 'placing' (re-scored), so a reconciler dying mid-look-up loses nothing.
_CLAIM_STUCK_LUA = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


class PlacementQueues:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = redis_client
        self._keys = keys
        self._claim = redis_client.register_script(_CLAIM_LUA)
        self._claim_stuck = redis_client.register_script(_CLAIM_STUCK_LUA)

    # the schedule
    def schedule(self, job_id: str, due_at: float) -> None:
        self._redis.zadd(self._keys.dial_schedule(), {job_id: due_at})

    def unschedule(self, job_id: str) -> None:
        self._redis.zrem(self._keys.dial_schedule(), job_id)

    # dispatched: a placement task is queued under a lease
    def claim_due(self, now: float, lease_until: float, max_inflight: int, batch: int) -> list[str]:
        """Move due jobs to 'dispatched' (leased until `lease_until`); lost leases go back first."""
        return self._claim(keys=[self._keys.dial_schedule(), self._keys.dial_dispatched(), self._keys.dial_holders()],
                           args=[now, lease_until, max_inflight, batch])

    def extend_lease(self, job_id: str, until: float) -> None:
        self._redis.zadd(self._keys.dial_dispatched(), {job_id: until})

    def end_lease(self, job_id: str, at: float) -> None:
        """The job's task is lost (its worker died): the next claim puts it back in the schedule."""
        self._redis.zadd(self._keys.dial_dispatched(), {job_id: at}, xx=True)

    def is_dispatched(self, job_id: str) -> bool:
        return self._redis.zscore(self._keys.dial_dispatched(), job_id) is not None

    def is_placing(self, job_id: str) -> bool:
        return self._redis.zscore(self._keys.dial_placing(), job_id) is not None

    def drop_lease(self, job_id: str) -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._keys.dial_dispatched(), job_id)
            pipe.hdel(self._keys.dial_holders(), job_id)
            pipe.execute()

    # placing: the REST call started
    def start_placing(self, job_id: str, at: float) -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._keys.dial_placing(), {job_id: at})
            pipe.zrem(self._keys.dial_dispatched(), job_id)
            pipe.execute()

    def stop_placing(self, job_id: str) -> bool:
        """False when it was not placing (another worker took it first)."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._keys.dial_placing(), job_id)
            pipe.hdel(self._keys.dial_holders(), job_id)
            removed, _ = pipe.execute()
        return bool(removed)

    def placing_since(self, before: float) -> list[str]:
        return self._redis.zrangebyscore(self._keys.dial_placing(), "-inf", before)

    def claim_stuck(self, job_id: str, before: float, rescore: float) -> bool:
        """Claim a job placing since `before` for one look-up (False: another reconciler has it, or
        it is placing no more); it stays listed at `rescore`, which `placing_since` finds later."""
        return bool(self._claim_stuck(keys=[self._keys.dial_placing()], args=[job_id, before, rescore]))

    def recheck_placing(self, job_id: str, score: float) -> None:
        """Keep a placing job listed, found by `placing_since` once its cutoff passes `score`."""
        self._redis.zadd(self._keys.dial_placing(), {job_id: score}, xx=True)

    def forget_placement(self, job_id: str) -> None:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._keys.dial_dispatched(), job_id)
            pipe.zrem(self._keys.dial_placing(), job_id)
            pipe.hdel(self._keys.dial_holders(), job_id)
            pipe.execute()

    # a campaign at its concurrency cap
    def wait_for_slot(self, campaign_id: str, job_id: str, at: float) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.campaign_waiting(campaign_id), {job_id: at})
            pipe.sadd(self._keys.campaigns_waiting(), campaign_id)
            pipe.execute()

    def stop_waiting(self, campaign_id: str, job_id: str) -> None:
        self._redis.zrem(self._keys.campaign_waiting(campaign_id), job_id)

    def waiting_campaigns(self) -> set[str]:
        return self._redis.smembers(self._keys.campaigns_waiting())

    def promote(self, campaign_id: str, count: int, now: float) -> int:
        """Move up to `count` of a campaign's waiting jobs back into the schedule, due now."""
        moved = 0
        for job_id, _ in self._redis.zpopmin(self._keys.campaign_waiting(campaign_id), count):
            self.schedule(job_id, now)
            moved += 1
        return moved

    def drop_if_none_waiting(self, campaign_id: str) -> None:
        waiting = self._keys.campaign_waiting(campaign_id)
        if not self._redis.exists(waiting):
            self._redis.srem(self._keys.campaigns_waiting(), campaign_id)
            if self._redis.exists(waiting):  # one arrived meanwhile
                self._redis.sadd(self._keys.campaigns_waiting(), campaign_id)

    # a paused campaign
    def park(self, campaign_id: str, job_id: str) -> None:
        self._redis.sadd(self._keys.campaign_parked(campaign_id), job_id)

    def unpark(self, campaign_id: str, job_id: str) -> None:
        self._redis.srem(self._keys.campaign_parked(campaign_id), job_id)

    def parked(self, campaign_id: str) -> set[str]:
        return self._redis.smembers(self._keys.campaign_parked(campaign_id))

    # gauges
    def depths(self) -> tuple[int, int, int, float | None]:
        """(scheduled, dispatched, placing, due time of the oldest scheduled job or None)."""
        with self._redis.pipeline(transaction=False) as pipe:
            for key in (self._keys.dial_schedule(), self._keys.dial_dispatched(), self._keys.dial_placing()):
                pipe.zcard(key)
            pipe.zrange(self._keys.dial_schedule(), 0, 0, withscores=True)
            scheduled, dispatched, placing, oldest = pipe.execute()
        return scheduled, dispatched, placing, (oldest[0][1] if oldest else None)
