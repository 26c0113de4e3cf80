"""One event webhook attempt against a real receiver and the Redis outbox: what it counts in
voicebot_event_webhook_attempts_total, given-up included (the alert VoicebotEventWebhooksGivenUp)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY
from webhook_receiver import WebhookReceiver

from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.webhook_delivery import WebhookDelivery
from voicebot_dialer.webhook_outbox import WebhookOutbox
from voicebot_dialer.webhook_schedule import RetrySchedule

PERIOD_S = 60.0


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    hooks.start()
    yield hooks
    hooks.stop()


@pytest.fixture
def delivery(sync_redis: redis.Redis, redis_prefix: str) -> WebhookDelivery:
    return WebhookDelivery(WebhookOutbox(sync_redis, RedisKeys(redis_prefix)), "test-secret",
                           RetrySchedule(base_s=1.0, cap_s=5.0, period_s=PERIOD_S))


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("voicebot_event_webhook_attempts_total", {"result": result}) or 0.0


def test_each_attempt_is_counted_by_what_became_of_its_event(delivery: WebhookDelivery,
                                                             receiver: WebhookReceiver) -> None:
    before = {r: counted(r) for r in ("delivered", "retry-scheduled", "refused", "given-up")}
    url = f"{receiver.url}/hook"
    receiver.answer = lambda path, event: (503, {})
    assert delivery.attempt(url, {"event_id": "ev-1", "type": "call.completed"}) == "retry-scheduled"
    # its retry period is over: the receiver never answered 2xx in time
    assert delivery.attempt(url, {"event_id": "ev-1", "type": "call.completed"}, retry=1,
                            first_at=time.time() - PERIOD_S - 1) == "given-up"
    receiver.answer = lambda path, event: (404, {})
    assert delivery.attempt(url, {"event_id": "ev-2", "type": "call.completed"}) == "refused"
    receiver.answer = lambda path, event: (200, {})
    assert delivery.attempt(url, {"event_id": "ev-3", "type": "call.completed"}) == "delivered"
    assert {r: counted(r) - before[r] for r in before} == {
        "delivered": 1, "retry-scheduled": 1, "refused": 1, "given-up": 1}
