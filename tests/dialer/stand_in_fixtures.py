"""Fixtures for placement against a Twilio Calls stand-in that can be slow or fail (in-process
dialer on the test's Redis; no Celery), and helpers to drive one attempt step by step."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from helpers.servers import uvicorn_thread
from helpers.twilio_calls_stand_in import CallsStandIn, create_calls_stand_in
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings

PLACING_TIMEOUT_S = 2.0  # so the REST client's timeout is 1 s
FAST_RETRY = {"initial_delay_s": 0.2, "multiplier": 1, "max_delay_s": 1}


@pytest.fixture
def calls_stand_in() -> Iterator[CallsStandIn]:
    state = CallsStandIn()
    with uvicorn_thread(create_calls_stand_in(state)) as url:
        state.url = url
        yield state


@pytest.fixture
def stand_in_dialer(dialer_settings: DialerSettings, calls_stand_in: CallsStandIn) -> DialerService:
    return DialerService(dialer_settings.model_copy(update={
        "twilio_api_base_url": calls_stand_in.url, "dialer_placing_timeout_s": PLACING_TIMEOUT_S}))


def dispatch(dialer: DialerService) -> list[tuple[str, int, str]]:
    """Placement tasks for every due job, as the dispatch loop would send them."""
    sent: list[tuple[str, int, str]] = []
    dialer.dispatch_due(lambda job_id, attempt, token: sent.append((job_id, attempt, token)))
    return sent


def new_placement(api: TestClient, dialer: DialerService, to: str, max_attempts: int = 3) -> tuple[str, int, str]:
    """A new job, dispatched: the placement task's arguments."""
    response = api.post("/v1/calls", json={"to": to, "max_attempts": max_attempts, "retry": FAST_RETRY})
    assert response.status_code == 201, response.text
    [task] = dispatch(dialer)
    assert task[0] == response.json()["id"]
    return task


def place_due(dialer: DialerService) -> list[str]:
    """Place every due job now (as workers would); what each placement did."""
    return [dialer.place(*task) for task in dispatch(dialer)]


def age(dialer: DialerService, job_id: str) -> None:
    """As if the job had been placing for longer than the placing timeout (only while it is listed)."""
    dialer.redis.zadd(dialer.keys.dial_placing(), {job_id: time.time() - 60}, xx=True)
