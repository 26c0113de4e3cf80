"""Dispatch: due jobs become placement tasks, campaigns below their cap get their waiting jobs
back, and the queue gauges follow. Every Celery worker's dispatch loop runs this."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context

from voicebot_core import telemetry
from voicebot_core.dial_jobs import is_terminal
from voicebot_core.metrics import DIAL_QUEUE_DEPTH, DIAL_QUEUE_LAG, DIAL_QUEUE_STATES
from voicebot_dialer.parts import DialerParts

SendPlacement = Callable[[str, int, str], None]
UNCAPPED_ROOM = 1_000  # jobs promoted per pass for a campaign without a concurrency cap


@contextmanager
def job_trace_context(job: dict[str, Any]) -> Iterator[None]:
    """Make the trace the dial job was created in current, so a task sent here carries it."""
    parent = telemetry.extract_context(telemetry.trace_carrier(job))
    token = otel_context.attach(parent) if parent is not None else None
    try:
        yield
    finally:
        if token is not None:
            otel_context.detach(token)


class Dispatcher:
    def __init__(self, parts: DialerParts) -> None:
        self._parts = parts

    def dispatch_due(self, send_placement: SendPlacement, batch: int = 100) -> int:
        """Claim due jobs and send one placement task each; returns how many were claimed."""
        parts = self._parts
        if not parts.capacity.has_worker_room():
            return 0  # nothing could be placed: leave jobs in the schedule instead of bouncing them
        now = time.time()
        ids = parts.queues.claim_due(now, now + parts.settings.dialer_dispatch_lease_s,
                                     parts.settings.dialer_max_inflight, batch)
        for job_id in ids:
            token = uuid.uuid4().hex
            with parts.jobs.locked(job_id):
                job = parts.jobs.get(job_id)
                if job is None or is_terminal(job) or job["state"] not in ("scheduled", "dispatched"):
                    parts.queues.drop_lease(job_id)
                    continue
                parts.lifecycle.mark_dispatched(job, token)
            with job_trace_context(job):
                send_placement(job_id, job["attempt"], token)
        return len(ids)

    def promote_waiting(self) -> int:
        """Move jobs of campaigns below their concurrency cap back into the schedule."""
        queues = self._parts.queues
        moved = 0
        for campaign_id in queues.waiting_campaigns():
            cap = self._parts.campaigns.concurrency_cap(campaign_id)
            room = cap - self._parts.capacity.campaign_active(campaign_id) if cap else UNCAPPED_ROOM
            if room > 0:
                moved += queues.promote(campaign_id, room, time.time())
            queues.drop_if_none_waiting(campaign_id)
        return moved

    def update_queue_gauges(self) -> None:
        scheduled, dispatched, placing, oldest_due = self._parts.queues.depths()
        active = self._parts.capacity.outbound_active()
        DIAL_QUEUE_LAG.set(max(0.0, time.time() - oldest_due) if oldest_due is not None else 0.0)
        for state, value in zip(DIAL_QUEUE_STATES, (scheduled, dispatched, placing, active), strict=True):
            DIAL_QUEUE_DEPTH.labels(state=state).set(value)
