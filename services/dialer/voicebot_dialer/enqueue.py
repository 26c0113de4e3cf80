"""Producing dialer tasks. The producer and the callback hand-over live once, in
`voicebot_core.dial_status` (the gateway uses them too); they are re-exported here, next to the
event webhook task both the API and the workers send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from voicebot_core.dial_status import (
    DIALER_QUEUE,
    HANDLE_CALL_STATUS_TASK,
    broker_transport_options,
    enqueue_call_status,
    producer_app,
    producer_for,
)

CALL_STATUS_TASK = HANDLE_CALL_STATUS_TASK
PLACE_CALL_TASK = "voicebot_dialer.place_call"
DELIVER_WEBHOOK_TASK = "voicebot_dialer.deliver_webhook"


def webhook_emitter(app: Celery) -> Callable[[str, dict[str, Any]], None]:
    """Queue an event's first delivery attempt to a customer's webhook (`webhook_delivery`: later
    attempts wait in Redis)."""

    def emit(url: str, event: dict[str, Any]) -> None:
        app.send_task(DELIVER_WEBHOOK_TASK, kwargs={"url": url, "event": event}, queue=DIALER_QUEUE)

    return emit


__all__ = ["CALL_STATUS_TASK", "DELIVER_WEBHOOK_TASK", "DIALER_QUEUE", "PLACE_CALL_TASK",
           "broker_transport_options", "enqueue_call_status", "producer_app", "producer_for",
           "webhook_emitter"]
