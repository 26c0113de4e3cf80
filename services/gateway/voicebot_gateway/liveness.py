"""Which gateways are alive, and the calls a dead one was relaying: those are marked failed.

A gateway killed outright (kill -9, OOM, a lost node) says nothing: the caller's stream and the
worker's close with it, and the worker writes the end of an ordinary hang-up. So every gateway
beats into a sorted set (id -> last beat) and keeps the set of call SIDs whose stream it relays in
Redis (changes written within a beat, usually at once). Each gateway also sweeps: a gateway silent
longer than VOICEBOT_GATEWAY_LIVENESS_TIMEOUT_S has its set taken (one Lua script: one sweeper
takes it) and each of its calls gets outcome failed, an ended_at and a `gateway-lost` event. A
gateway whose own beat is not recent (Redis unreachable) judges nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from voicebot_core.calls import CallStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry

log = logging.getLogger(__name__)

BEATS_PER_TIMEOUT = 4

# KEYS[1] gateways zset, KEYS[2] the gateway's calls set. ARGV: gateway id, the beat cutoff. Takes the
# calls of a gateway last heard of before the cutoff, once: another sweeper finds nothing.
_CLAIM_LUA = """
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at or tonumber(at) >= tonumber(ARGV[2]) then return {} end
local calls = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return calls
"""


def new_gateway_id() -> str:
    """Unique per process: a restarted pod (same hostname) is a new gateway."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class GatewayLiveness:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, calls: CallStore, registry: WorkerRegistry,
                 timeout_s: float, gateway_id: str | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.calls = calls
        self.registry = registry
        self.timeout_s = timeout_s
        self.gateway_id = gateway_id or new_gateway_id()
        self.beat_s = timeout_s / BEATS_PER_TIMEOUT
        self._claim = redis.register_script(_CLAIM_LUA)
        self._live: set[str] = set()  # the streams this gateway relays now
        self._added: set[str] = set()  # stream changes not yet written to Redis
        self._removed: set[str] = set()
        self._changed = asyncio.Event()
        self._last_beat = 0.0
        self._task: asyncio.Task[None] | None = None

    # --- this gateway's streams (called from StreamCall through GatewayState) ---------------------------
    def opened(self, call_sid: str) -> None:
        self._live.add(call_sid)
        self._removed.discard(call_sid)
        self._added.add(call_sid)
        self._changed.set()

    def closed(self, call_sid: str) -> None:
        self._live.discard(call_sid)
        self._added.discard(call_sid)
        self._removed.add(call_sid)
        self._changed.set()

    # --- the loop -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-liveness")

    async def stop(self) -> None:
        """A clean exit (after the drain): leave the set, so nobody marks our calls failed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys.gateways(), self.gateway_id)
                pipe.delete(self.keys.gateway_calls(self.gateway_id))
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not leave the gateway set: %r", exc)

    async def _run(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                async with asyncio.timeout(self.beat_s * 2):
                    await self.beat()
                # not under the timeout: a dead gateway's calls, once taken, are all marked
                if time.monotonic() - last_sweep >= self.beat_s:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except (RedisError, TimeoutError) as exc:
                log.warning("gateway liveness beat failed: %r", exc)
            except Exception:  # the loop must outlive a bug in one pass
                log.exception("gateway liveness pass failed")
            with contextlib.suppress(TimeoutError):  # a new stream is written at once; otherwise beat on time
                await asyncio.wait_for(self._changed.wait(), self.beat_s)

    async def beat(self) -> None:
        """Our beat, and the streams opened and closed since the last one."""
        self._changed.clear()
        added, removed = self._added, self._removed
        self._added, self._removed = set(), set()
        now = time.time()
        calls_key = self.keys.gateway_calls(self.gateway_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(self.keys.gateways(), {self.gateway_id: now})
                if added:
                    pipe.sadd(calls_key, *added)
                if removed:
                    pipe.srem(calls_key, *removed)
                new_member, *_ = await pipe.execute()
        except BaseException:  # not written: keep them for the next beat (newer changes win)
            newer_added, newer_removed = self._added, self._removed
            self._added = (added - newer_removed) | newer_added
            self._removed = (removed - newer_added) | newer_removed
            raise
        if new_member and self._last_beat:
            # silent past the timeout (a stalled loop, Redis cut off): taken for dead and our calls marked
            # failed. They go on: back in the set, so a real death later is still noticed.
            log.warning("this gateway was taken for dead: %d live streams back in its set", len(self._live))
            if self._live:
                await self.redis.sadd(calls_key, *self._live)
        self._last_beat = now

    async def sweep(self) -> int:
        """Mark the calls of every gateway silent past the timeout failed; how many were marked."""
        now = time.time()
        if now - self._last_beat > self.timeout_s / 2:  # we may be the one cut off
            return 0
        cutoff = now - self.timeout_s
        dead = [g for g in await self.redis.zrangebyscore(self.keys.gateways(), "-inf", cutoff)
                if g != self.gateway_id]
        marked = 0
        for gateway_id in dead:
            sids = await self._claim(keys=[self.keys.gateways(), self.keys.gateway_calls(gateway_id)],
                                     args=[gateway_id, cutoff])
            if sids:
                log.warning("gateway %s silent for over %.0f s: marking its %d calls failed", gateway_id,
                            self.timeout_s, len(sids))
            for sid in sids:
                await self._mark_failed(sid, gateway_id)
                marked += 1
        return marked

    async def _mark_failed(self, call_sid: str, gateway_id: str) -> None:
        record = await self.calls.record(call_sid)
        fields: dict[str, object] = {"outcome": "failed", "outcome_reason": "gateway lost"}
        if record is None or not record.ended_at:  # the worker's ended_at (the stream's close) is the truer one
            fields["ended_at"] = time.time()
        await self.calls.upsert(call_sid, **fields)
        await self.calls.add_event(call_sid, "gateway-lost", gateway_id=gateway_id, swept_by=self.gateway_id)
        if record is not None and record.worker_id:  # the worker frees it too when it sees the close
            await self.registry.release(record.worker_id, call_sid)
