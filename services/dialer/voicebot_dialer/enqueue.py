"""Producing dialer tasks: the Celery producer for a broker URL, and the callback hand-over.

`enqueue_call_status` (the gateway's way to hand a Twilio status/AMD callback to the dialer)
lives once, in `voicebot_core.dial_status`; it is re-exported here. A producer built by
`producer_app` also honours the optional broker key prefix (tests isolate Celery's keys with it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery

from voicebot_core.dial_status import DIALER_QUEUE, HANDLE_CALL_STATUS_TASK, enqueue_call_status

CALL_STATUS_TASK = HANDLE_CALL_STATUS_TASK

__all__ = ["CALL_STATUS_TASK", "DIALER_QUEUE", "broker_transport_options", "enqueue_call_status", "producer_app"]


def broker_transport_options(key_prefix: str = "") -> dict[str, Any]:
    # Tasks wait for rate tokens for a few seconds at most; a dead worker's unacked message
    # comes back after this. Our own leases recover jobs sooner (see DialerService.dispatch_due).
    options: dict[str, Any] = {"visibility_timeout": 300}
    if key_prefix:
        options["global_keyprefix"] = key_prefix
    return options


@lru_cache(maxsize=8)
def producer_app(broker_url: str, key_prefix: str = "") -> Celery:
    app = Celery("voicebot-dialer-producer", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = broker_transport_options(key_prefix)
    return app
