"""The event webhook retry schedule (pure functions): exponential backoff with jitter from about a
second, each wait capped at 5 minutes, for the configured period; Retry-After honoured."""

from __future__ import annotations

import itertools
import random
from email.utils import formatdate

import pytest

from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.webhook_schedule import RetrySchedule, backoff_delay, next_attempt_at, parse_retry_after

SHIPPED = DialerSettings.model_fields
DEFAULT = RetrySchedule(SHIPPED["dialer_webhook_backoff_base_s"].default,
                        SHIPPED["dialer_webhook_backoff_cap_s"].default,
                        SHIPPED["dialer_webhook_retry_period_s"].default)
NEARLY_ONE = 1 - 1e-12


def test_shipped_schedule_is_one_second_doubling_to_five_minutes_for_a_day() -> None:
    assert (DEFAULT.base_s, DEFAULT.cap_s, DEFAULT.period_s) == (1.0, 300.0, 86_400.0)


def test_backoff_doubles_from_a_second_with_jitter_between_half_and_all_of_its_bound() -> None:
    rng = random.Random(7)
    for retries_done in range(9):  # bounds 1, 2, 4 ... 256 s
        bound = 2.0 ** retries_done
        assert backoff_delay(retries_done, DEFAULT, lambda: 0.0) == pytest.approx(bound / 2)
        assert backoff_delay(retries_done, DEFAULT, lambda: NEARLY_ONE) == pytest.approx(bound)
        samples = [backoff_delay(retries_done, DEFAULT, rng.random) for _ in range(200)]
        assert all(bound / 2 <= s <= bound for s in samples)
        assert len(set(samples)) == len(samples)  # jittered: events failing together spread out
    assert backoff_delay(0, DEFAULT) <= 1.0


def test_backoff_never_waits_longer_than_five_minutes() -> None:
    rng = random.Random(3)
    for retries_done in (9, 10, 20, 64, 1000, 10**6):
        samples = [backoff_delay(retries_done, DEFAULT, rng.random) for _ in range(200)]
        assert all(150.0 <= s <= 300.0 for s in samples), retries_done
        assert max(samples) > 250.0  # jitter still spreads capped waits


def attempt_times(schedule: RetrySchedule, rng: random.Random) -> list[float]:
    """When every attempt of an event whose receiver never answers 2xx is made (the first at 0)."""
    times, now = [0.0], 0.0
    while (due := next_attempt_at(0.0, now, len(times) - 1, schedule, rand=rng.random)) is not None:
        assert due > now
        times.append(now := due)
    return times


def test_retries_last_for_the_whole_period_and_stop_at_its_end() -> None:
    times = attempt_times(DEFAULT, random.Random(11))
    assert times[-1] == DEFAULT.period_s  # the last attempt on the period's end, none after
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert all(w <= 300.0 for w in waits)
    assert len(times) > 86_400 / 300  # hundreds of attempts, not a handful
    # a receiver down for 5 minutes from the first attempt gets the event within 5 more minutes
    assert any(300.0 <= t <= 600.0 for t in times)


def test_short_period_from_settings_is_respected() -> None:
    schedule = RetrySchedule(base_s=0.05, cap_s=0.2, period_s=2.0)
    times = attempt_times(schedule, random.Random(5))
    assert times[-1] == 2.0 and all(t <= 2.0 for t in times)
    assert next_attempt_at(0.0, 2.0, 40, schedule) is None
    assert next_attempt_at(0.0, 2.5, 40, schedule) is None


def test_retry_after_is_a_lower_bound_that_cannot_outlast_the_period() -> None:
    assert next_attempt_at(0.0, 10.0, 0, DEFAULT, retry_after_s=120.0) == pytest.approx(130.0)
    assert next_attempt_at(0.0, 10.0, 12, DEFAULT, retry_after_s=1.0, rand=lambda: NEARLY_ONE) == \
        pytest.approx(310.0)  # a short Retry-After does not shorten the backoff
    assert next_attempt_at(0.0, 86_000.0, 0, DEFAULT, retry_after_s=3600.0) is None


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(formatdate(1_000_090.0, usegmt=True), now=1_000_000.0) == pytest.approx(90.0)
    assert parse_retry_after(formatdate(999_000.0, usegmt=True), now=1_000_000.0) == 0.0
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad) is None
