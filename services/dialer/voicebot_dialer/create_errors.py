"""What a failed `calls.create` tells us about whether Twilio made the call.

Only an answer in which Twilio says no (a 4xx) or a request that never left this host proves no
call exists. A timeout, a connection lost after sending, or a 5xx (Twilio, or a proxy in front of
it, may have created the call before failing) leaves it uncertain: the reconciler must ask
Twilio before anything dials again.
"""

from __future__ import annotations

from typing import Literal

import requests
from twilio.base.exceptions import TwilioRestException

from voicebot_dialer.twilio_http import TwilioRateLimited

CreateFailure = Literal["refused", "rate-limited", "uncertain", "unreachable"]

# 4xx answers that mean "no answer in time" rather than "no".
TIMEOUT_STATUSES = frozenset({408, 504})


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc)


def classify(exc: Exception) -> CreateFailure:
    """How a `calls.create` that raised `exc` ended; anything unknown counts as uncertain."""
    if isinstance(exc, TwilioRateLimited):
        return "rate-limited"
    if isinstance(exc, TwilioRestException):
        if exc.status >= 500 or exc.status in TIMEOUT_STATUSES:
            return "uncertain"
        return "refused"
    if isinstance(exc, requests.RequestException) and never_sent(exc):
        return "unreachable"
    return "uncertain"
