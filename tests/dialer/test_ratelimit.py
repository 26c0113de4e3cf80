"""The Redis CPS limiter: never above the limit in any window, and no idle gaps under load."""

from __future__ import annotations

import threading
import time

import redis

from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.rates import max_in_any_window
from voicebot_dialer.ratelimit import Grant, RateLimiter, RateScope


def test_limit_holds_across_threads_and_scopes(redis_url: str, redis_prefix: str) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    grants: dict[str, list[float]] = {"+1555A": [], "+1555B": []}
    lock = threading.Lock()
    stop_at = time.monotonic() + 2.6

    def worker(n: int) -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        limiter = RateLimiter(client, keys)
        number = "+1555A" if n % 2 else "+1555B"
        i = 0
        while time.monotonic() < stop_at:
            got = limiter.take(f"{n}:{i}", [RateScope("account", 10), RateScope(f"from:{number}", 4)], 1.0)
            i += 1
            if isinstance(got, Grant):
                with lock:
                    grants[number].append(got.at)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = grants["+1555A"] + grants["+1555B"]
    assert max_in_any_window(grants["+1555A"]) <= 4
    assert max_in_any_window(grants["+1555B"]) <= 4
    assert max_in_any_window(everything) <= 8  # two numbers at 4 each stay under the account's 10
    # No idle gaps: both numbers run at their limit for the whole run (about 2.6 s -> 3 windows).
    assert len(grants["+1555A"]) >= 10 and len(grants["+1555B"]) >= 10


def test_account_limit_and_fractional_rates(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    limiter = RateLimiter(client, RedisKeys(prefix=redis_prefix))
    granted = [isinstance(limiter.try_take(f"t{i}", [RateScope("account", 3)]), Grant) for i in range(5)]
    assert granted == [True, True, True, False, False]
    wait = limiter.try_take("t9", [RateScope("account", 3)])
    assert not isinstance(wait, Grant) and 0 < wait <= 1.001
    # 0.5 CPS: one call per two seconds.
    assert isinstance(limiter.try_take("h1", [RateScope("half", 0.5)]), Grant)
    wait = limiter.try_take("h2", [RateScope("half", 0.5)])
    assert not isinstance(wait, Grant) and 1.9 < wait <= 2.001
    # A refusal in one scope takes no token from the others.
    assert not isinstance(limiter.try_take("x1", [RateScope("free", 5), RateScope("account", 3)]), Grant)
    assert client.zcard(f"{redis_prefix}:rate:free") == 0


def test_margin_holds_tokens_past_the_second_without_raising_the_limit(redis_url: str, redis_prefix: str) -> None:
    # 1.1 s: 1 s plus a 0.1 s margin. The old reading (floor(cps * window) per window) allowed 11.
    limiter = RateLimiter(redis.Redis.from_url(redis_url, decode_responses=True), RedisKeys(prefix=redis_prefix), 1.1)
    granted = [isinstance(limiter.try_take(f"m{i}", [RateScope("account", 10)]), Grant) for i in range(11)]
    assert granted == [True] * 10 + [False]
    wait = limiter.try_take("m11", [RateScope("account", 10)])
    assert not isinstance(wait, Grant) and 1.0 < wait <= 1.101
    assert isinstance(limiter.try_take("h1", [RateScope("half", 0.5)]), Grant)
    wait = limiter.try_take("h2", [RateScope("half", 0.5)])
    assert not isinstance(wait, Grant) and 2.0 < wait <= 2.101  # 1 per 2 s, plus the margin


def test_renew_keeps_a_young_grant_and_replaces_an_old_one(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    limiter = RateLimiter(client, RedisKeys(prefix=redis_prefix))
    grant = limiter.take("r1", [RateScope("account", 5)], 1.0)
    assert isinstance(grant, Grant)
    assert limiter.renew(grant, max_age_s=5.0, max_wait_s=1.0) is grant
    time.sleep(0.05)
    fresh = limiter.renew(grant, max_age_s=0.01, max_wait_s=1.0)
    assert isinstance(fresh, Grant) and fresh.at > grant.at and fresh.age() < 0.05
    assert client.zcard(f"{redis_prefix}:rate:account") == 2  # the stale token stays spent
