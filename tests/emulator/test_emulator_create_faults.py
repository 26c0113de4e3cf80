"""The emulator's create fault plan, seen through the real twilio SDK: planned answers for the next
calls.create requests (slow, 5xx after or before the call was made, 429 with Retry-After), taken in
order, then Twilio's normal answer again; a plan that cannot happen at Twilio is refused."""

from __future__ import annotations

import time

import httpx
import pytest
from emulator_fixtures import Emulator
from twilio.base.exceptions import TwilioRestException

TWIML = '<Response><Pause length="20"/></Response>'


def plan(emulator: Emulator, faults: list[dict]) -> httpx.Response:
    return httpx.post(f"{emulator.url}/emulator/create-faults", json=faults, timeout=5)


def made_calls_to(emulator: Emulator, number: str) -> list[dict]:
    return [c for c in httpx.get(f"{emulator.url}/emulator/calls", timeout=5).json() if c["to"] == number]


def test_planned_answers_are_taken_in_order_then_creates_answer_normally(emulator: Emulator) -> None:
    httpx.delete(f"{emulator.url}/emulator/create-faults", timeout=5).raise_for_status()
    assert plan(emulator, [
        {"status": 503, "make_call": True},  # Twilio made the call, the answer says otherwise
        {"status": 500, "make_call": False},
        {"status": 429, "make_call": False, "retry_after": "2"},
        {"status": 201, "delay_s": 0.5},
    ]).status_code == 200
    client = emulator.sdk()
    number = "+15551119001"
    statuses = []
    for _ in range(3):
        with pytest.raises(TwilioRestException) as failed:
            client.calls.create(to=number, from_="+15550000000", twiml=TWIML)
        statuses.append(failed.value.status)
    assert statuses == [503, 500, 429]
    assert len(made_calls_to(emulator, number)) == 1  # only the first made a call
    started = time.monotonic()
    slow = client.calls.create(to=number, from_="+15550000000", twiml=TWIML)
    assert time.monotonic() - started >= 0.5
    assert httpx.get(f"{emulator.url}/emulator/create-faults", timeout=5).json() == []
    normal = client.calls.create(to=number, from_="+15550000000", twiml=TWIML)
    assert {c["call_sid"] for c in made_calls_to(emulator, number)} >= {slow.sid, normal.sid}
    for call in made_calls_to(emulator, number):
        client.calls(call["call_sid"]).update(status="completed")


def test_a_429_carries_its_retry_after(emulator: Emulator) -> None:
    httpx.delete(f"{emulator.url}/emulator/create-faults", timeout=5).raise_for_status()
    plan(emulator, [{"status": 429, "make_call": False, "retry_after": "3"}]).raise_for_status()
    response = httpx.post(f"{emulator.url}/2010-04-01/Accounts/{emulator.settings.twilio_account_sid}/Calls.json",
                          auth=(emulator.settings.twilio_account_sid,
                                emulator.settings.twilio_auth_token.get_secret_value()),
                          data={"To": "+15551119002", "From": "+15550000000", "Twiml": TWIML},
                          timeout=5)
    assert (response.status_code, response.headers["Retry-After"], response.json()["code"]) == (429, "3", 20429)
    assert made_calls_to(emulator, "+15551119002") == []


@pytest.mark.parametrize("fault", [{"status": 429, "make_call": True}, {"status": 201, "make_call": False},
                                   {"status": 503, "delay_s": -1}])
def test_a_plan_twilio_could_not_answer_is_refused(emulator: Emulator, fault: dict) -> None:
    response = plan(emulator, [fault])
    assert response.status_code == 422, response.text
    assert httpx.get(f"{emulator.url}/emulator/create-faults", timeout=5).json() == []
