"""Which dialer Celery workers are alive, and which dial jobs each one holds.

A dead worker's placement tasks come back only when their lease runs out (DIALER_DISPATCH_LEASE_S)
or Celery restores its unacknowledged messages (minutes). So every worker beats into a sorted set
once a second, and records itself as the holder of each job whose placement task it receives.
Another worker's reconcile pass looks for jobs held by a worker silent for longer than
DIALER_WORKER_LIVENESS_S: a dispatched one has its lease ended at once (re-dispatched on the next
pass, a new dispatch token making the dead worker's task stale), and a placing one is looked up in
Twilio now instead of a placing timeout after its create (`placement_queues.recheck_placing`).
A worker that cannot beat (Redis unreachable) judges nobody: its own beat must be recent.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from voicebot_core.redis_keys import RedisKeys

log = logging.getLogger(__name__)

BEAT_EVERY_S = 1.0
FORGET_AFTER_S = 86_400.0  # a dead worker's entry stays this long: an absent worker counts as alive

# KEYS[1] the job's hash, KEYS[2] holders. ARGV: job id, dispatch token, worker id. Only the task of
# the job's current dispatch names a holder: a stale redelivered task must not.
_HOLD_LUA = """
if redis.call('HGET', KEYS[1], 'dispatch_token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""


class WorkerLiveness:
    def __init__(self, redis_client: redis.Redis, keys: RedisKeys, timeout_s: float) -> None:
        self._redis = redis_client
        self._keys = keys
        self.timeout_s = timeout_s
        self._hold = redis_client.register_script(_HOLD_LUA)
        self._last_beat = 0.0

    def beat(self, worker_id: str) -> None:
        now = time.time()
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._keys.dialer_workers(), {worker_id: now})
            pipe.zremrangebyscore(self._keys.dialer_workers(), "-inf", now - FORGET_AFTER_S)
            pipe.execute()
        self._last_beat = now

    def hold(self, job_id: str, token: str, worker_id: str) -> bool:
        """`worker_id` received the placement task of the job's current dispatch (`token`)."""
        return bool(self._hold(keys=[self._keys.dial_job(job_id), self._keys.dial_holders()],
                               args=[job_id, token, worker_id]))

    def release(self, job_id: str) -> None:
        self._redis.hdel(self._keys.dial_holders(), job_id)

    def holder(self, job_id: str) -> str | None:
        return self._redis.hget(self._keys.dial_holders(), job_id)

    def jobs_of_dead_workers(self) -> dict[str, str]:
        """Job id -> its holder, for holders whose last beat is older than the timeout. Empty
        while this process's own beat is not recent (it could be the one cut off)."""
        now = time.time()
        if now - self._last_beat > self.timeout_s / 2:
            return {}
        holders: dict[str, str] = self._redis.hgetall(self._keys.dial_holders())
        if not holders:
            return {}
        workers = sorted(set(holders.values()))
        beats = dict(zip(workers, self._redis.zmscore(self._keys.dialer_workers(), workers), strict=True))
        dead = {w for w, at in beats.items() if at is not None and now - at > self.timeout_s}
        return {job_id: worker for job_id, worker in holders.items() if worker in dead}


class BeatThread(threading.Thread):
    """Beats for this worker every second, independent of the dispatch loop's passes."""

    def __init__(self, liveness: WorkerLiveness, worker_id: str) -> None:
        super().__init__(name="dialer-worker-beat", daemon=True)
        self._liveness = liveness
        self._worker_id = worker_id
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self._liveness.beat(self._worker_id)
            except redis.RedisError as exc:
                log.warning("dialer worker liveness beat failed: %s", exc)
            if self._stop_event.wait(BEAT_EVERY_S):
                return

    def stop(self) -> None:
        self._stop_event.set()
