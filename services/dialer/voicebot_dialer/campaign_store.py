"""Campaigns in Redis: the campaign hash (status, cap, rate, settings), its index and job set."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.job_store import EVENT_STREAM_MAXLEN, JobStore

# KEYS: schedule, campaign waiting, campaign parked, event stream. ARGV: now, stream maxlen, dial job
# key head and tail, dial job events key head and tail (RedisKeys.around_id), event id nonce, then
# job ids. Cancels the jobs that are only waiting (taking one out of the schedule/waiting/parked sets
# means no worker holds it), with their job.canceled event, in one round trip per chunk; returns
# those events (each event id is the nonce and the job's place in ARGV: unique, as a uuid is).
_CANCEL_WAITING_LUA = """
local now, maxlen = tonumber(ARGV[1]), tonumber(ARGV[2])
local job_head, job_tail, events_head, events_tail = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local canceled = {}
for i = 8, #ARGV do
  local id = ARGV[i]
  local taken = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id) + redis.call('SREM', KEYS[3], id)
  if taken > 0 then
    local jkey = job_head .. id .. job_tail
    redis.call('HSET', jkey, 'state', 'canceled', 'outcome', 'canceled', 'ended_at', now, 'updated_at', now,
               'cancel_requested', '1', 'parked', '')
    local event = cjson.encode({event_id = 'ev_' .. ARGV[7] .. string.format('%08x', i - 7),
                                dial_job_id = id, kind = 'job.canceled', at = now, state = 'canceled',
                                outcome = 'canceled', attempt = tonumber(redis.call('HGET', jkey, 'attempt'))})
    redis.call('RPUSH', events_head .. id .. events_tail, event)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'event', event)
    canceled[#canceled + 1] = event
  end
end
return canceled
"""


class CampaignStore:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, jobs: JobStore) -> None:
        self._redis = redis_client
        self._keys = keys
        self._jobs = jobs
        self._cancel_waiting = redis_client.register_script(_CANCEL_WAITING_LUA)

    def create(self, record: dict[str, str], jobs: list[tuple[dict[str, Any], float]]) -> None:
        """Store a campaign and its scheduled jobs in one MULTI: all or none."""
        now = time.time()
        campaign_id = record["id"]
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.campaign(campaign_id), mapping=record)
            pipe.zadd(self._keys.campaigns_index(), {campaign_id: now})
            for fields, due_at in jobs:
                self._jobs.stage(pipe, fields, due_at, now)
            pipe.execute()

    def get(self, campaign_id: str) -> dict[str, str]:
        """The campaign hash ({} when there is no such campaign)."""
        return self._redis.hgetall(self._keys.campaign(campaign_id))

    def concurrency_cap(self, campaign_id: str) -> int:
        """The campaign's max_concurrent_calls (0: none)."""
        return int(self._redis.hget(self._keys.campaign(campaign_id), "max_concurrent_calls") or 0)

    def newest(self, limit: int) -> list[str]:
        return self._redis.zrevrange(self._keys.campaigns_index(), 0, limit - 1)

    def job_ids(self, campaign_id: str) -> list[str]:
        return sorted(self._redis.smembers(self._keys.campaign_jobs(campaign_id)))

    def set_status(self, campaign_id: str, status: str) -> None:
        self._redis.hset(self._keys.campaign(campaign_id), "status", status)

    def cancel_waiting(self, campaign_id: str, job_ids: list[str], now: float) -> list[dict[str, Any]]:
        """Cancel those of `job_ids` no worker holds (scheduled, waiting or parked); returns their
        job.canceled events."""
        keys = self._keys
        events = self._cancel_waiting(
            keys=[keys.dial_schedule(), keys.campaign_waiting(campaign_id), keys.campaign_parked(campaign_id),
                  keys.dial_event_stream()],
            args=[now, EVENT_STREAM_MAXLEN, *keys.around_id(keys.dial_job), *keys.around_id(keys.dial_job_events),
                  uuid.uuid4().hex[:24], *job_ids])
        return [json.loads(event) for event in events]
