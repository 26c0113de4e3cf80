"""Pacing as Twilio sees it: the `calls.create` requests arriving at the REST end, not the grants at
the limiter, stay within the account's and each caller ID's CPS in every 1 s window, although every
new connection takes 0.8 s to set up (a slow TLS handshake), across prefork worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from dialer_helpers import API_KEY, CeleryWorkers, wait_for
from fastapi.testclient import TestClient
from pydantic import ValidationError

from helpers.servers import uvicorn_thread
from helpers.slow_tls import SlowHandshakeProxy, self_signed_cert
from helpers.twilio_calls_stand_in import CallsStandIn, create_calls_stand_in
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.rates import max_in_any_window
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.fresh_token import FreshToken, NoFreshToken
from voicebot_dialer.ratelimit import Grant, RateLimiter, RateScope
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.twilio_calls import TwilioCalls

HANDSHAKE_S = 0.8
ACCOUNT_CPS, NUMBER_CPS = 10, 4
NUMBERS = "+15550000001,+15550000002,+15550000003"  # 3 x 4/s: the account's 10/s binds too
JOB = {"id": "dj_pacing", "to": "+14155550901", "from": "+15550000001"}


@dataclass
class SlowTlsStandIn:
    calls: CallsStandIn
    proxy: SlowHandshakeProxy
    url: str


@pytest.fixture
def slow_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowTlsStandIn]:
    """The Calls stand-in over https, each new connection's handshake taking HANDSHAKE_S; trusted by
    requests here and in the worker processes started after (REQUESTS_CA_BUNDLE)."""
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    state = CallsStandIn()
    with uvicorn_thread(create_calls_stand_in(state), ssl_certfile=str(cert), ssl_keyfile=str(key)) as upstream, \
            SlowHandshakeProxy(int(upstream.rsplit(":", 1)[1]), HANDSHAKE_S) as proxy:
        state.url = f"https://127.0.0.1:{proxy.port}"
        yield SlowTlsStandIn(state, proxy, state.url)


def test_token_is_checked_after_the_slow_handshake_right_before_the_create_is_written(
        dialer_settings: DialerSettings, slow_tls: SlowTlsStandIn) -> None:
    calls = TwilioCalls(dialer_settings.model_copy(update={"twilio_api_base_url": slow_tls.url}))
    checked: list[float] = []
    started = time.time()
    calls.place(JOB, 1, lambda: checked.append(time.time()))
    [create] = slow_tls.calls.creates
    assert checked[0] - started >= HANDSHAKE_S * 0.9  # the connection was up by then
    assert 0 <= create["at"] - checked[0] < 0.1  # and the request left right after


def test_warm_up_opens_the_connection_the_next_create_uses(dialer_settings: DialerSettings,
                                                           slow_tls: SlowTlsStandIn) -> None:
    calls = TwilioCalls(dialer_settings.model_copy(update={"twilio_api_base_url": slow_tls.url}))
    calls.warm_up()
    assert slow_tls.proxy.connections == 1
    time.sleep(0.2)  # TLS 1.3 session tickets arrive after the handshake: the idle connection is still good
    started = time.time()
    calls.place(JOB, 1, lambda: None)
    assert slow_tls.calls.creates[0]["at"] - started < HANDSHAKE_S / 2
    calls.warm_up()  # an idle open connection: nothing to do
    assert slow_tls.proxy.connections == 1


def test_a_refused_check_sends_nothing(dialer_settings: DialerSettings, slow_tls: SlowTlsStandIn) -> None:
    calls = TwilioCalls(dialer_settings.model_copy(update={"twilio_api_base_url": slow_tls.url}))

    def no_token() -> None:
        raise NoFreshToken(0.5)

    with pytest.raises(NoFreshToken):
        calls.place(JOB, 1, no_token)
    calls.place(JOB, 1, lambda: None)  # the client still works afterwards
    assert len(slow_tls.calls.creates) == 1


def test_settings_refuse_a_rate_window_with_no_room_for_the_send_delay() -> None:
    with pytest.raises(ValidationError, match="DIALER_RATE_WINDOW_S"):
        DialerSettings(dialer_rate_window_s=1.0)  # 0.03 s between grant and write could squeeze 11 into 1 s
    DialerSettings(dialer_rate_window_s=1.2, dialer_rate_send_within_s=0.2)


def test_a_stale_token_is_replaced_by_a_fresh_one_or_nothing_is_sent(redis_url: str, redis_prefix: str) -> None:
    limiter = RateLimiter(redis.Redis.from_url(redis_url, decode_responses=True), RedisKeys(prefix=redis_prefix), 1.1)
    young = limiter.take("a:1", [RateScope("young", 1)], 0)
    assert isinstance(young, Grant)
    FreshToken(limiter, young, send_within_s=0.5, wait_until=time.monotonic()).check()  # young enough: kept
    stale = limiter.take("b:1", [RateScope("busy", 1)], 0)
    free = limiter.take("c:1", [RateScope("free", 5)], 0)
    assert isinstance(stale, Grant) and isinstance(free, Grant)
    time.sleep(0.05)
    # 1/s: the stale token is the only one for 1.1 s and stays spent, so no fresh one comes in time.
    with pytest.raises(NoFreshToken) as refused:
        FreshToken(limiter, stale, send_within_s=0.03, wait_until=time.monotonic() + 0.2).check()
    assert 0.9 < refused.value.wait_s <= 1.1
    renewed = FreshToken(limiter, free, send_within_s=0.03, wait_until=time.monotonic() + 1)
    renewed.check()
    assert renewed.renewals == 1 and renewed.grant.at > free.at and renewed.grant.age() < 0.03


def test_creates_arrive_within_the_cps_in_every_second_across_prefork_workers(
        dialer_settings: DialerSettings, slow_tls: SlowTlsStandIn, celery_workers: CeleryWorkers) -> None:
    settings = dialer_settings.model_copy(update={
        "twilio_api_base_url": slow_tls.url, "dialer_from_numbers": NUMBERS,
        "dialer_account_cps": ACCOUNT_CPS, "dialer_number_cps": NUMBER_CPS})
    count = 60
    with TestClient(build_asgi_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {API_KEY}"
        response = api.post("/v1/campaigns", json={
            "contacts": [{"to": f"+1415555{4000 + i}"} for i in range(count)], "max_attempts": 1,
            "calls_per_second": 100, "max_concurrent_calls": 100})
        assert response.status_code == 201, response.text
    for name in ("w1", "w2"):
        celery_workers.start(name, settings, prefork=3)
    wait_for(lambda: len(slow_tls.calls.creates) >= count, 45, "every create to reach the stand-in", 0.2)
    time.sleep(0.5)  # anything more (there must be nothing) arrives too
    creates = slow_tls.calls.creates
    assert len(creates) == count
    assert slow_tls.proxy.connections >= 6, "every pool process paid the slow handshake"
    by_number: dict[str, list[float]] = {}
    for create in creates:
        by_number.setdefault(create["From"], []).append(create["at"])
    overall = max_in_any_window([c["at"] for c in creates])
    per_number = {number: max_in_any_window(times) for number, times in by_number.items()}
    print(f"most creates arriving in any 1 s: {overall} (limit {ACCOUNT_CPS}); per caller ID: {per_number} "
          f"(limit {NUMBER_CPS}); {count} in {creates[-1]['at'] - creates[0]['at']:.2f} s")
    assert overall <= ACCOUNT_CPS
    assert len(per_number) == 3 and max(per_number.values()) <= NUMBER_CPS
