"""One way to open Redis connections, so every service decodes replies the same way.

A `RedisTarget` is either a plain URL or a set of Redis Sentinels and the name of the primary they
watch. With Sentinels, every client is `Sentinel.master_for(...)`: a connection asks the Sentinels
for the current primary, so after a failover new connections reach the promoted replica. Commands
that hit the connection errors of the switch (the dead primary refuses, the Sentinels still name it
until they agree it is down, a demoted primary answers READONLY) are retried for `retry_s`, then
raise: a caller sees its write fail, never silently vanish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
import redis.asyncio.retry as aioretry
import redis.asyncio.sentinel as aiosentinel
import redis.client
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError

T = TypeVar("T")
log = logging.getLogger(__name__)
HEALTH_CHECK_S = 30
CONNECT_TIMEOUT_S = 2.0  # a dead primary's address may black-hole connects (a gone pod IP)
SENTINEL_TIMEOUT_S = 2.0
RECONNECTS = 3  # a plain URL's commands: resent this often on a lost connection (0.05..0.5 s apart)


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is. `sentinels` empty: `url` is the server. Else the Sentinels name the primary of
    `master`; `url` still gives username, password, db and TLS (rediss://), its host is ignored."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    sentinel_password: str = field(default="", repr=False)
    retry_s: float = 15.0


def _deadline_backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=0.5, base=0.05)


def _within(budget_s: float, is_retryable: Callable[[Exception], bool] | None) -> Callable[[Exception], bool]:
    """A retry predicate that says no once `budget_s` has passed from now."""
    deadline = time.monotonic() + budget_s

    def retryable(error: Exception) -> bool:
        return time.monotonic() < deadline and (is_retryable is None or is_retryable(error))
    return retryable


class DeadlineRetry(redis.retry.Retry):
    """Retries connection errors until `budget_s` has passed since the first attempt (not a count:
    redis-py nests the connect's retries inside the command's, and a count would multiply)."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(_deadline_backoff(), retries=-1)
        self.budget_s = budget_s

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        return super().call_with_retry(do, fail, _within(self.budget_s, is_retryable), with_failure_count)


class AsyncDeadlineRetry(aioretry.Retry):
    """`DeadlineRetry` for redis.asyncio."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(_deadline_backoff(), retries=-1)
        self.budget_s = budget_s

    async def call_with_retry(self, do: Callable[[], Any], fail: Callable[..., Any],
                              is_retryable: Callable[[Exception], bool] | None = None,
                              with_failure_count: bool = False) -> Any:
        return await super().call_with_retry(do, fail, _within(self.budget_s, is_retryable), with_failure_count)


def _master_kwargs(target: RedisTarget) -> dict[str, Any]:
    """Username, password, db and TLS of the primary, from the URL (its host and port are the
    Sentinels' to say)."""
    parsed = parse_url(target.url)
    kwargs: dict[str, Any] = {k: parsed[k] for k in ("username", "password", "db") if parsed.get(k) is not None}
    if target.url.startswith("rediss://"):
        kwargs["ssl"] = True
    return kwargs


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S}
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


class _AsyncPrimaryConnection(aiosentinel.SentinelManagedConnection):
    """A reconnect asks the Sentinels for the primary. redis-py's Sentinel connection does so only in
    `connect()`; a command sent on a connection its retry closed reconnects through
    `connect_check_health`, which retries the address it had: the dead primary, for the whole budget."""

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        if retry_socket_connect:  # not from connect_to(): a reconnect
            await self.connect()
            return
        await super().connect_check_health(check_health=check_health, retry_socket_connect=False)


class _AsyncPrimarySSLConnection(_AsyncPrimaryConnection, aiosentinel.SentinelManagedSSLConnection):
    pass


class _PrimaryConnection(redis.sentinel.SentinelManagedConnection):
    """`_AsyncPrimaryConnection` for the sync client."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock:
            return
        if retry_socket_connect:
            self.connect()
            return
        super().connect_check_health(check_health=check_health, retry_socket_connect=False)


class _PrimarySSLConnection(_PrimaryConnection, redis.sentinel.SentinelManagedSSLConnection):
    pass


def _with_connection_class(kwargs: dict[str, Any], plain: type, tls: type) -> dict[str, Any]:
    kwargs = dict(kwargs)
    kwargs["connection_class"] = tls if kwargs.pop("ssl", False) else plain
    return kwargs


class _BlockingSentinelPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The primary's pool that waits for a free connection instead of raising (the gateway's)."""


def connect(target: str | RedisTarget, max_connections: int | None = None,
            pool_timeout: float = 10) -> aioredis.Redis:
    """An asyncio client. `max_connections`: a blocking pool of that size (waits up to
    `pool_timeout` s for a free connection: bursts of calls starting and ending)."""
    if isinstance(target, str):
        target = RedisTarget(target)
    common: dict[str, Any] = {"decode_responses": True, "health_check_interval": HEALTH_CHECK_S}
    if not target.sentinels:
        # An asyncio pool does not check a connection before handing it out (the sync one does): after a
        # Redis restart the first command on each pooled connection would fail. Reconnect and resend, on a
        # lost connection only: a command that timed out may have been applied (and a frozen Redis would
        # multiply the wait).
        common["retry"] = aioretry.Retry(_deadline_backoff(), RECONNECTS, supported_errors=(RedisConnectionError,))
        if max_connections is None:
            return aioredis.Redis.from_url(target.url, **common)
        return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            target.url, max_connections=max_connections, timeout=pool_timeout, **common))
    sentinel = aiosentinel.Sentinel(list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target))
    pool: dict[str, Any] = {}
    if max_connections is not None:
        pool = {"connection_pool_class": _BlockingSentinelPool, "max_connections": max_connections,
                "timeout": pool_timeout}
    master = _with_connection_class(_master_kwargs(target), _AsyncPrimaryConnection, _AsyncPrimarySSLConnection)
    return sentinel.master_for(target.master, retry=AsyncDeadlineRetry(target.retry_s),
                               socket_connect_timeout=CONNECT_TIMEOUT_S, **common, **master, **pool)


def connect_sync(target: str | RedisTarget) -> redis.Redis:
    if isinstance(target, str):
        target = RedisTarget(target)
    common: dict[str, Any] = {"decode_responses": True, "health_check_interval": HEALTH_CHECK_S}
    if not target.sentinels:
        return redis.Redis.from_url(target.url, **common)
    sentinel = redis.sentinel.Sentinel(list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target))
    master = _with_connection_class(_master_kwargs(target), _PrimaryConnection, _PrimarySSLConnection)
    return sentinel.master_for(target.master, retry=DeadlineRetry(target.retry_s),
                               socket_connect_timeout=CONNECT_TIMEOUT_S, **common, **master)


class ReplicaAck:
    """WAIT for one replica after a critical write, when the primary has a replica.

    Replication is asynchronous: a write the primary acknowledged and then died with may never
    reach the replica that Sentinel promotes. `WAIT 1 timeout_ms`, sent on the write's own
    connection (a pipeline), returns once a replica holds it. Without a connected replica (after a
    failover, before the old primary rejoins) it is skipped, not waited out; a replica that does not
    answer in time is logged and counted (`unacked`), the write stands: dialing does not stop
    because a replica lags."""

    def __init__(self, client: redis.Redis, timeout_ms: int, recheck_s: float = 5.0) -> None:
        self._client = client
        self.timeout_ms = timeout_ms
        self._recheck_s = recheck_s
        self._replicas = 0
        self._checked_at = float("-inf")
        self.unacked = 0

    def replicas(self) -> int:
        """Replicas connected to the primary (ROLE), looked up at most every `recheck_s`."""
        if time.monotonic() - self._checked_at > self._recheck_s:
            try:
                role = self._client.execute_command("ROLE")
            except redis.ResponseError:  # a managed Redis may refuse ROLE: then no WAIT, as without replicas
                role = None
            self._replicas = len(role[2]) if role and role[0] == "master" else 0
            self._checked_at = time.monotonic()
        return self._replicas

    def add(self, pipe: redis.client.Pipeline) -> bool:
        """Queue the WAIT after the writes on `pipe` (non-transactional); False when not wanted."""
        if self.timeout_ms <= 0 or self.replicas() == 0:
            return False
        pipe.execute_command("WAIT", 1, self.timeout_ms)
        return True

    def check(self, acked: int, what: str) -> None:
        if acked < 1:
            self.unacked += 1
            log.warning("%s: no replica acknowledged it within %d ms; a failover now could lose it",
                        what, self.timeout_ms)
            self._checked_at = float("-inf")  # the replica may be gone: look again next time
