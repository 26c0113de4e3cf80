"""Rates as a receiver sees them, for the pacing tests and benchmarks."""

from __future__ import annotations


def max_in_any_window(times: list[float], window_s: float = 1.0) -> int:
    """Most events inside any half-open window [t, t + window_s)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
