"""The dialer's Twilio REST client: every request bounded in time (shorter than the placing
timeout, by configuration too), and a 429's Retry-After kept."""

from __future__ import annotations

import time

import pytest
import requests
from pydantic import ValidationError
from twilio.base.exceptions import TwilioRestException

from helpers.twilio_calls_stand_in import CallsStandIn, CreateAnswer
from voicebot_dialer.create_errors import classify
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.twilio_http import TwilioRateLimited, retry_after_seconds

JOB = {"id": "dj_test", "to": "+14155550900", "from": "+15550000001"}


def test_twilio_timeout_defaults_below_the_placing_timeout() -> None:
    assert DialerSettings().twilio_timeout_s == 10.0  # placing timeout 30 s
    assert DialerSettings(dialer_placing_timeout_s=3).twilio_timeout_s == 2.0
    assert DialerSettings(dialer_placing_timeout_s=8, dialer_twilio_timeout_s=7).twilio_timeout_s == 7.0


@pytest.mark.parametrize(("placing_s", "twilio_s"), [(10, 10), (10, 9.5), (30, 60), (1, 0)])
def test_settings_refuse_a_twilio_timeout_not_ending_before_the_placing_timeout(placing_s: float,
                                                                                twilio_s: float) -> None:
    with pytest.raises(ValidationError, match=r"VOICEBOT_DIALER_TWILIO_TIMEOUT_S .* must end at least 1s before "
                                              r"VOICEBOT_DIALER_PLACING_TIMEOUT_S"):
        DialerSettings(dialer_placing_timeout_s=placing_s, dialer_twilio_timeout_s=twilio_s)


def test_a_create_twilio_does_not_answer_ends_within_the_client_timeout(
        stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    calls_stand_in.create_answers.append(CreateAnswer(answer_after_s=5))
    started = time.monotonic()
    with pytest.raises(requests.Timeout) as raised:
        stand_in_dialer.calls.place(JOB, 1)
    elapsed = time.monotonic() - started
    assert elapsed < stand_in_dialer.settings.dialer_placing_timeout_s, elapsed
    assert elapsed >= 0.9, elapsed  # the 1 s budget, not an early give-up
    assert classify(raised.value) == "uncertain"  # Twilio had the request: it may have made the call
    assert len(calls_stand_in.creates) == 1


def test_a_429_carries_its_retry_after(stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    calls_stand_in.create_answers.append(CreateAnswer(status=429, made_after_s=None, retry_after="7"))
    with pytest.raises(TwilioRateLimited) as raised:
        stand_in_dialer.calls.place(JOB, 1)
    assert (raised.value.status, raised.value.code, raised.value.retry_after_s) == (429, 20429, 7.0)
    assert classify(raised.value) == "rate-limited"
    assert calls_stand_in.calls == []


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT", now=1792567670.0) == pytest.approx(10.0)
    assert retry_after_seconds(None) == retry_after_seconds("soon") == 1.0


@pytest.mark.parametrize(("status", "expected"), [(500, "uncertain"), (502, "uncertain"), (503, "uncertain"),
                                                  (504, "uncertain"), (408, "uncertain"), (400, "refused"),
                                                  (401, "refused"), (404, "refused")])
def test_a_create_answered_5xx_or_timeout_is_uncertain_other_4xx_refused(status: int, expected: str) -> None:
    assert classify(TwilioRestException(status, "/Calls.json", "no", method="POST")) == expected


def test_connection_failures_before_and_after_sending() -> None:
    assert classify(requests.ConnectTimeout()) == "unreachable"
    assert classify(requests.ReadTimeout()) == "uncertain"
    assert classify(requests.ConnectionError("Connection aborted: RemoteDisconnected")) == "uncertain"
