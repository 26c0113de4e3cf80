"""Hand a Twilio status or AMD callback for a dial job to the dialer's Celery workers.

The gateway is Twilio's one public entry point; it checks the signature, then enqueues this
task on the dialer's queue (a durable Redis list), so callbacks survive a dialer restart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from celery import Celery

HANDLE_CALL_STATUS_TASK = "voicebot_dialer.handle_call_status"
DIALER_QUEUE = "dialer"


def broker_transport_options(key_prefix: str = "") -> dict[str, Any]:
    # Tasks wait for rate tokens for a few seconds at most; a dead worker's unacked message
    # comes back after this. The dialer's own leases recover jobs sooner.
    options: dict[str, Any] = {"visibility_timeout": 300}
    if key_prefix:  # several deployments (or test runs) sharing one Redis keep apart
        options["global_keyprefix"] = key_prefix
    return options


@lru_cache(maxsize=8)
def producer_app(broker_url: str, key_prefix: str = "") -> Celery:
    """A Celery producer for the dialer's broker, with its key prefix."""
    app = Celery("voicebot-dialer-producer", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = broker_transport_options(key_prefix)
    return app


def enqueue_call_status(
    broker: str | Celery,
    dial_job_id: str,
    attempt: int,
    kind: Literal["status", "amd"],
    params: dict[str, Any],
) -> None:
    app = producer_app(broker) if isinstance(broker, str) else broker
    app.send_task(
        HANDLE_CALL_STATUS_TASK,
        kwargs={"dial_job_id": dial_job_id, "attempt": attempt, "kind": kind, "params": params},
        queue=DIALER_QUEUE,
    )
