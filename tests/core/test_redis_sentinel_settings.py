"""VOICEBOT_REDIS_SENTINELS and friends: parsing, the clients they make, the Celery broker they give."""

from __future__ import annotations

import pytest
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from pydantic import ValidationError

from voicebot_core.dial_status import PUBLISH_RETRY_STEP_S, producer_for
from voicebot_core.redis_client import AsyncDeadlineRetry, DeadlineRetry, RedisTarget, connect, connect_sync
from voicebot_core.settings import CommonSettings, parse_sentinels


def settings(**env: str) -> CommonSettings:
    return CommonSettings(dev_mode=True, **env)


def test_parse_sentinels() -> None:
    assert parse_sentinels("") == ()
    assert parse_sentinels(" s-0:26379 , s-1:26380,") == (("s-0", 26379), ("s-1", 26380))
    assert parse_sentinels("[::1]:26379") == (("::1", 26379),)


@pytest.mark.parametrize("bad", ["s-0", "s-0:", ":26379", "s-0:port", "s-0:70000", "s-0:26379;s-1:26379", ","])
def test_malformed_sentinel_list_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="VOICEBOT_REDIS_SENTINELS"):
        settings(redis_sentinels=bad)


def test_sentinels_need_a_master_name() -> None:
    with pytest.raises(ValidationError, match="VOICEBOT_REDIS_SENTINEL_MASTER"):
        settings(redis_sentinels="s-0:26379", redis_sentinel_master=" ")


def test_without_sentinels_target_and_broker_are_the_url() -> None:
    plain = settings(redis_url="redis://r:6379/2")
    assert plain.redis_target == RedisTarget("redis://r:6379/2", retry_s=15.0, master="mymaster")
    assert plain.broker_url == "redis://r:6379/2"
    assert plain.broker_sentinel_options == {}


def test_sentinel_target_and_broker() -> None:
    s = settings(redis_url="redis://:pw@ignored:6379/3", redis_sentinels="s-0:26379,[::1]:26380",
                 redis_sentinel_master="main", redis_sentinel_password="sentinel-pw", redis_failover_retry_s="7")
    assert s.redis_target == RedisTarget("redis://:pw@ignored:6379/3", (("s-0", 26379), ("::1", 26380)), "main",
                                         "sentinel-pw", 7.0)
    assert "sentinel-pw" not in repr(s.redis_target)
    assert s.broker_url == "sentinel://:pw@s-0:26379/3;sentinel://:pw@[::1]:26380/3"
    assert s.broker_sentinel_options == {"master_name": "main", "sentinel_kwargs": {"password": "sentinel-pw"}}


def test_an_explicit_broker_url_wins_over_the_sentinels() -> None:
    s = settings(redis_sentinels="s-0:26379", dialer_broker_url="redis://broker:6379/0")
    assert s.broker_url == "redis://broker:6379/0"
    assert s.broker_sentinel_options == {}


def test_producer_merges_sentinel_options_into_the_transport_options() -> None:
    s = settings(redis_url="redis://x/0", redis_sentinels="127.0.0.1:26379", redis_sentinel_master="m",
                 dialer_broker_prefix="p:celery:", redis_failover_retry_s="5")
    app = producer_for(s)
    assert app.conf.broker_url == "sentinel://127.0.0.1:26379/0"
    assert app.conf.broker_transport_options == {"visibility_timeout": 300, "global_keyprefix": "p:celery:",
                                                 "master_name": "m"}
    assert app.conf.task_publish_retry_policy["max_retries"] * PUBLISH_RETRY_STEP_S >= 5


def test_sentinel_clients_come_from_master_for() -> None:
    target = RedisTarget("redis://user:pw@h/4", (("127.0.0.1", 1),), "main", "spw", retry_s=3)
    sync_client = connect_sync(target)
    pool = sync_client.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool) and pool.service_name == "main"
    assert pool.connection_kwargs["password"] == "pw" and pool.connection_kwargs["db"] == 4
    assert isinstance(pool.connection_kwargs["retry"], DeadlineRetry)
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["password"] == "spw"
    async_client = connect(target, max_connections=7)
    apool = async_client.connection_pool
    assert isinstance(apool, aiosentinel.SentinelConnectionPool) and apool.max_connections == 7
    assert isinstance(apool.connection_kwargs["retry"], AsyncDeadlineRetry)


def test_deadline_retry_gives_up_after_its_budget() -> None:
    """A primary that never comes back: the command fails loudly after ~retry_s, not hangs or drops."""
    import time

    client = connect_sync(RedisTarget("redis://x/0", (("127.0.0.1", 1),), "main", retry_s=1.0))
    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.set("k", "v")
    # at least the budget; the bound only tells "gave up" from "hangs" (a loaded machine adds seconds)
    assert 0.9 < time.monotonic() - started < 15
