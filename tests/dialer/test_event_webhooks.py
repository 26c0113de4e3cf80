"""Event webhooks with real Celery workers and a real receiver: one stable id per event, retries
that outlast a receiver's outage and a worker restart, 4xx/429 handling, the retry period."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from dialer_helpers import CeleryWorkers, wait_for
from fastapi.testclient import TestClient
from webhook_receiver import WebhookReceiver

from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.event_webhooks import verify_signature
from voicebot_dialer.settings import DialerSettings

# waits of 25-200 ms instead of 0.5 s ... 5 min; a lost delivery task is queued again after 3 s
FAST_RETRIES = {"dialer_webhook_backoff_base_s": 0.05, "dialer_webhook_backoff_cap_s": 0.2,
                "dialer_webhook_retry_period_s": 120.0, "dialer_dispatch_lease_s": 3.0}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    yield hooks
    hooks.stop()


def tomorrow() -> str:
    """A schedule_at no test reaches: jobs only create and cancel, nothing is dialed."""
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def create_job(api: TestClient, webhook_url: str, to: str) -> str:
    created = api.post("/v1/calls", json={"to": to, "webhook_url": webhook_url, "schedule_at": tomorrow(),
                                          "metadata": {"crm": to[-3:]}})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def stored_events(api: TestClient, job_ids: list[str]) -> list[dict[str, Any]]:
    return [event for job_id in job_ids for event in api.get(f"/v1/calls/{job_id}").json()["events"]]


def outbox_sizes(client: redis.Redis, settings: DialerSettings) -> tuple[int, int]:
    keys = RedisKeys(prefix=settings.redis_prefix)
    return client.hlen(keys.webhook_deliveries()), client.zcard(keys.webhook_due())


def test_receiver_down_then_back_gets_every_event_once_or_more_with_one_id_each(
        api: TestClient, dialer_settings: DialerSettings, sync_redis: redis.Redis, celery_workers: CeleryWorkers,
        receiver: WebhookReceiver) -> None:
    settings = dialer_settings.model_copy(update=FAST_RETRIES)
    first = celery_workers.start("w1", settings)
    hook = f"{receiver.url}/hook"  # not started: connections are refused
    job_ids = [create_job(api, hook, to) for to in ("+14155550611", "+14155550612", "+14155550613")]
    for job_id in job_ids[:2]:
        assert api.post(f"/v1/calls/{job_id}/cancel").status_code == 200
    campaign = api.post("/v1/campaigns", json={  # its jobs are canceled in bulk, by a Lua script
        "agent_profile": "sales", "webhook_url": hook, "schedule_at": tomorrow(),
        "contacts": [{"to": "+14155550621"}, {"to": "+14155550622"}]}).json()
    assert api.post(f"/v1/campaigns/{campaign['id']}/cancel").status_code == 200
    job_ids += [job["id"] for job in api.get("/v1/calls", params={"campaign_id": campaign["id"]}).json()["items"]]
    events = stored_events(api, job_ids)
    expected = {event["event_id"] for event in events}
    assert len(events) == len(expected) == 7  # 3 created, 2 canceled one by one, 2 in bulk: all ids unique

    wait_for(lambda: outbox_sizes(sync_redis, settings)[0] == 7, 20, "every event to wait for a retry")
    celery_workers.kill(first)  # the retries wait in Redis: another worker takes them over
    celery_workers.start("w2", settings)
    receiver.answer = lambda path, event: (503, {})
    receiver.start()
    wait_for(lambda: min(Counter(p.event["event_id"] for p in receiver.posts()).get(i, 0) for i in expected) >= 8,
             30, "8 answered attempts of every event (more than the old limit of 7)")
    receiver.answer = lambda path, event: (200, {})
    wait_for(lambda: set(receiver.delivered()) == expected, 20, "every event to be delivered")
    wait_for(lambda: outbox_sizes(sync_redis, settings) == (0, 0), 10, "the outbox to empty")

    secret = settings.dialer_webhook_secret.get_secret_value()
    by_id: dict[str, set[bytes]] = {}
    for post in receiver.posts():
        assert post.event_id_header == post.event["event_id"]
        assert verify_signature(secret, post.body, post.signature)
        by_id.setdefault(post.event["event_id"], set()).add(post.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())  # every retry is the same signed body
    stored = {event["event_id"]: event for event in events}
    for event_id, post in receiver.delivered().items():
        assert post.event["kind"] == stored[event_id]["kind"] and post.event["at"] == stored[event_id]["at"]
        assert post.event["dial_job_id"] == stored[event_id]["dial_job_id"]


def test_4xx_ends_retries_but_429_waits_for_its_retry_after(
        api: TestClient, dialer_settings: DialerSettings, sync_redis: redis.Redis, celery_workers: CeleryWorkers,
        receiver: WebhookReceiver) -> None:
    settings = dialer_settings.model_copy(update=FAST_RETRIES)
    celery_workers.start("w1", settings)

    def answer(path: str, event: dict[str, Any]) -> tuple[int, dict[str, str]]:
        if path == "gone":
            return 410, {}
        if path == "busy" and len(receiver.posts("busy")) == 0:
            return 429, {"Retry-After": "2"}
        return 200, {}
    receiver.answer = answer
    receiver.start()
    create_job(api, f"{receiver.url}/gone", "+14155550631")
    create_job(api, f"{receiver.url}/busy", "+14155550632")
    wait_for(lambda: len(receiver.posts("busy")) == 2, 20, "the 429'd event's second attempt")
    busy = receiver.posts("busy")
    assert [p.status for p in busy] == [429, 200]
    assert busy[1].at - busy[0].at >= 1.9  # the backoff alone would have waited at most 0.05 s
    assert busy[0].body == busy[1].body
    wait_for(lambda: outbox_sizes(sync_redis, settings) == (0, 0), 10, "the outbox to empty")
    assert [p.status for p in receiver.posts("gone")] == [410]  # never attempted again


def test_retries_stop_when_the_retry_period_is_over(
        api: TestClient, dialer_settings: DialerSettings, sync_redis: redis.Redis, celery_workers: CeleryWorkers,
        receiver: WebhookReceiver) -> None:
    period = 1.5
    settings = dialer_settings.model_copy(update={**FAST_RETRIES, "dialer_webhook_retry_period_s": period})
    celery_workers.start("w1", settings)
    receiver.answer = lambda path, event: (503, {})
    receiver.start()
    create_job(api, f"{receiver.url}/hook", "+14155550641")
    wait_for(receiver.posts, 20, "the first attempt")
    time.sleep(period + 1.0)
    posts = receiver.posts()
    assert outbox_sizes(sync_redis, settings) == (0, 0)  # given up: nothing left to attempt
    time.sleep(0.5)
    assert len(receiver.posts()) == len(posts) >= 5
    assert posts[-1].at - posts[0].at <= period + 0.5  # the last attempt on the period's end, at the latest
    assert posts[-1].at - posts[0].at >= period - 0.3  # ... and the retries went on until then
    assert len({p.event["event_id"] for p in posts}) == 1
