"""Hypothesis settings for the property-based tests: deterministic, bounded, no example database.

`derandomize=True` draws the same examples on every run (a failure reproduces as is, CI and here),
`database=None` keeps nothing between runs (nothing written into the checkout), `deadline=None`
because this 2-core machine runs other suites at the same time. Pure functions get `PURE`, tests
that talk to a real gateway over the network get `NETWORK` (fewer examples, the gateway fixture
shared by all of them on purpose: its Redis state is what they check).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "voicebot", derandomize=True, deadline=None, database=None, max_examples=200, print_blob=False,
)
PROFILE = settings.get_profile("voicebot")
PURE = settings(PROFILE, max_examples=200)
NETWORK = settings(
    PROFILE,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STREAMS = settings(NETWORK, max_examples=15)
