"""Dialer: REST API for dial jobs and campaigns, Celery workers that place them through Twilio."""

from voicebot_dialer.enqueue import CALL_STATUS_TASK, DIALER_QUEUE, enqueue_call_status

__all__ = ["CALL_STATUS_TASK", "DIALER_QUEUE", "enqueue_call_status"]
