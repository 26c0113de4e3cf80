"""One attempt to deliver an event webhook, and what follows it: done, or the next attempt kept in
the outbox (`webhook_outbox`) at the time the retry schedule (`webhook_schedule`) names."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from voicebot_core.metrics import EVENT_WEBHOOK_ATTEMPTS
from voicebot_dialer.event_webhooks import WebhookRejected, deliver
from voicebot_dialer.job_store import new_event_id
from voicebot_dialer.webhook_outbox import PendingDelivery, WebhookOutbox
from voicebot_dialer.webhook_schedule import RetrySchedule, next_attempt_at

log = logging.getLogger(__name__)


class WebhookDelivery:
    def __init__(self, outbox: WebhookOutbox, secret: str, schedule: RetrySchedule, timeout_s: float = 5.0) -> None:
        self.outbox = outbox
        self._secret = secret
        self._schedule = schedule
        self._timeout_s = timeout_s

    def attempt(self, url: str, event: dict[str, Any], retry: int = 0, first_at: float | None = None) -> str:
        """Attempt number `retry` (0: the first) of `event`; returns what became of it."""
        if "event_id" not in event:  # queued before events had ids: its first attempt names it
            event = {"event_id": new_event_id(), **event}
        event_id = event["event_id"]
        if retry and not self.outbox.is_current(event_id, retry):
            return "superseded"  # delivered, given up, or attempted by a task queued twice
        first_at = first_at or time.time()
        try:
            deliver(url, event, self._secret, self._timeout_s)
        except WebhookRejected as exc:
            result = self._after_failure(url, event, retry, first_at, exc)
        else:
            self.outbox.done(event_id)  # also ends retries a duplicate of this attempt scheduled
            result = "delivered"
        if result != "superseded":
            EVENT_WEBHOOK_ATTEMPTS.labels(result=result).inc()
        return result

    def _after_failure(self, url: str, event: dict[str, Any], retry: int, first_at: float,
                       exc: WebhookRejected) -> str:
        event_id = event["event_id"]
        if not exc.retryable:
            self.outbox.done(event_id)
            log.warning("webhook event %s refused (%s): not retried", event_id, exc)
            return "refused"
        due = next_attempt_at(first_at, time.time(), retry, self._schedule, exc.retry_after_s)
        if due is None:
            self.outbox.done(event_id)
            log.warning("webhook event %s given up after %d attempts (%s)", event_id, retry + 1, exc)
            return "given-up"
        pending = PendingDelivery(url=url, event=event, first_at=first_at, retry=retry + 1)
        if not self.outbox.schedule(pending, retry, due):
            return "superseded"
        log.info("webhook event %s: %s; attempt %d in %.1f s", event_id, exc, retry + 2, due - time.time())
        return "retry-scheduled"

    def queue_due(self, send: Callable[..., None], lease_s: float, limit: int = 100) -> int:
        """Hand every due retry to `send(**delivery)`; returns how many (the dispatch loop calls this)."""
        due = self.outbox.claim_due(time.time(), lease_s, limit)
        for delivery in due:
            send(**delivery)
        return len(due)
