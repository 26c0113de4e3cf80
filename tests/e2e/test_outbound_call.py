"""Outbound end to end: REST -> Celery -> Twilio REST (emulator) -> gateway -> bot-worker."""

from __future__ import annotations

import time

import httpx

OUTBOUND = "+15557000006"


def test_dial_job_is_placed_and_the_callee_hears_a_greeting_with_the_variable(stack, phone):
    api = httpx.Client(base_url=stack.urls["dialer"], timeout=30,
                       headers={"Authorization": f"Bearer {stack.api_key}"})
    response = api.post("/v1/calls", json={"to": OUTBOUND, "agent_profile": "fake-outbound",
                                           "variables": {"name": "Sam"}, "machine_detection": "none"},
                        headers={"Idempotency-Key": f"e2e-{time.time()}"})
    assert response.status_code in (200, 201, 202), response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 90
    job = {}
    while time.monotonic() < deadline:
        job = api.get(f"/v1/calls/{job_id}").json()
        if job["state"] in ("completed", "failed", "canceled") and job.get("transcript"):
            break
        time.sleep(0.5)
    assert job["state"] == "completed", job
    call_sid = job["call_sid"]
    report = phone.report(call_sid)
    assert report["direction"] == "outbound-api"
    assert report["heard"], "the callee heard the bot"
    bot = [t["text"] for t in job["transcript"] if t["role"] == "assistant"]
    assert bot[0].startswith("Hi Sam, this is Robin"), job["transcript"]
    # the callee's "hello?" at pick-up does not cut the greeting; the rest of the script follows,
    # and "goodbye" makes the agent end the call through its end_call tool
    users = [t["text"] for t in job["transcript"] if t["role"] == "user"]
    assert users == ["yes, this is a good time to talk", "thanks, goodbye"], job["transcript"]
    assert not any(t.get("interrupted") for t in job["transcript"] if t["role"] == "assistant")
    assert bot[-1] == "Thanks for calling. Goodbye!"
