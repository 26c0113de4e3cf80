"""The Redis CPS limiter: never above the limit in any window, and no idle gaps under load."""

from __future__ import annotations

import threading
import time

import redis
from dialer_helpers import max_in_any_window

from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.ratelimit import RateLimiter, RateScope


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
            ok, at = limiter.take(f"{n}:{i}", [RateScope("account", 10), RateScope(f"from:{number}", 4)], 1.0)
            i += 1
            if ok:
                with lock:
                    grants[number].append(at)

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
    granted = [limiter.try_take(f"t{i}", [RateScope("account", 3)])[0] for i in range(5)]
    assert granted == [True, True, True, False, False]
    ok, wait = limiter.try_take("t9", [RateScope("account", 3)])
    assert not ok and 0 < wait <= 1.001
    # 0.5 CPS: one call per two seconds.
    assert limiter.try_take("h1", [RateScope("half", 0.5)])[0]
    ok, wait = limiter.try_take("h2", [RateScope("half", 0.5)])
    assert not ok and 1.9 < wait <= 2.001
    # A refusal in one scope takes no token from the others.
    assert limiter.try_take("x1", [RateScope("free", 5), RateScope("account", 3)])[0] is False
    assert client.zcard(f"{redis_prefix}:rate:free") == 0
