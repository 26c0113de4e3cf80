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


@lru_cache(maxsize=4)
def _producer(broker_url: str) -> Celery:
    return Celery("voicebot-producer", broker=broker_url, set_as_current=False)


def enqueue_call_status(
    broker: str | Celery,
    dial_job_id: str,
    attempt: int,
    kind: Literal["status", "amd"],
    params: dict[str, Any],
) -> None:
    app = _producer(broker) if isinstance(broker, str) else broker
    app.send_task(
        HANDLE_CALL_STATUS_TASK,
        kwargs={"dial_job_id": dial_job_id, "attempt": attempt, "kind": kind, "params": params},
        queue=DIALER_QUEUE,
    )
