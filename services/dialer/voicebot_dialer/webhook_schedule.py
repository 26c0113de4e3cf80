"""When an event webhook is attempted again: exponential backoff with jitter, for a fixed period.

Pure functions of the clock and a random source, so the schedule is tested without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetrySchedule:
    base_s: float = 1.0  # the first wait, at most
    cap_s: float = 300.0  # no single wait longer
    period_s: float = 86_400.0  # no attempt later than this after the first


def backoff_delay(retries_done: int, schedule: RetrySchedule, rand: Callable[[], float] = random.random) -> float:
    """Wait before retry number `retries_done + 1`: a ceiling doubling from `base_s` up to `cap_s`,
    times a random factor in [0.5, 1] so that many events failing together spread out again."""
    ceiling = min(schedule.cap_s, schedule.base_s * 2.0 ** min(retries_done, 64))
    return ceiling * (0.5 + 0.5 * rand())


def next_attempt_at(first_at: float, now: float, retries_done: int, schedule: RetrySchedule,
                    retry_after_s: float | None = None, rand: Callable[[], float] = random.random) -> float | None:
    """When to attempt again after a failed attempt at `now`, or None: the period is over.

    The last attempt falls on the period's end at the latest. A receiver's Retry-After is a lower
    bound on the wait; one pointing past the period's end ends the retries.
    """
    deadline = first_at + schedule.period_s
    if now >= deadline:
        return None
    due = now + backoff_delay(retries_done, schedule, rand)
    if retry_after_s is not None:
        if now + retry_after_s > deadline:
            return None
        due = max(due, now + retry_after_s)
    return min(due, deadline)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delay-seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # '-0000': still GMT, as every HTTP date
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
