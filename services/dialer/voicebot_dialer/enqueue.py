"""Producing dialer tasks. The producer and the callback hand-over live once, in
`voicebot_core.dial_status` (the gateway uses them too); they are re-exported here."""

from __future__ import annotations

from voicebot_core.dial_status import (
    DIALER_QUEUE,
    HANDLE_CALL_STATUS_TASK,
    broker_transport_options,
    enqueue_call_status,
    producer_app,
)

CALL_STATUS_TASK = HANDLE_CALL_STATUS_TASK

__all__ = ["CALL_STATUS_TASK", "DIALER_QUEUE", "broker_transport_options", "enqueue_call_status", "producer_app"]
