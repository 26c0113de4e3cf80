"""The check a create runs with its connection up, just before its request is written
(`twilio_http.before_write`): the rate token pacing it must be at most `send_within_s` old, else a
fresh one is taken first. So every create leaves within `send_within_s` of the grant that paces it,
however long the connection, a lock or the CPU made it wait (docs/dialer-api.md, Pacing).
"""

from __future__ import annotations

import time

from voicebot_dialer.ratelimit import Grant, RateLimiter

# A fresh token that is stale again by the write means this process is stalling: send nothing.
MAX_RENEWALS = 3
STALLED_RETRY_S = 0.1


class NoFreshToken(Exception):
    """No fresh token in time: the create was not sent; try the attempt again after `wait_s`."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"no fresh rate token (next in {wait_s:.3f}s)")
        self.wait_s = wait_s


class FreshToken:
    def __init__(self, limiter: RateLimiter, grant: Grant, send_within_s: float, wait_until: float) -> None:
        """`wait_until` (time.monotonic()): the latest a fresh token may be waited for."""
        self.grant = grant  # the grant the request was written under, once it was
        self.renewals = 0
        self._limiter = limiter
        self._send_within_s = send_within_s
        self._wait_until = wait_until

    def check(self) -> None:
        while self.grant.age() > self._send_within_s:
            if self.renewals >= MAX_RENEWALS:
                raise NoFreshToken(STALLED_RETRY_S)
            got = self._limiter.renew(self.grant, self._send_within_s, max(0.0, self._wait_until - time.monotonic()))
            if not isinstance(got, Grant):
                raise NoFreshToken(got)
            self.grant = got
            self.renewals += 1
