"""Placement with real Celery worker processes and the Twilio emulator: outcomes, retries, AMD,
do-not-call, cancel, signed webhooks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from dialer_helpers import API_KEY, CeleryWorkers, wait_for
from fastapi.testclient import TestClient
from stand_in_fixtures import new_placement, place_due

from helpers.twilio_calls_stand_in import CallsStandIn, CreateAnswer
from voicebot_devstack.processes import free_port
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.event_webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from voicebot_dialer.placement import MAX_RATE_LIMITED
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings

FAST_RETRY = {"initial_delay_s": 0.2, "multiplier": 1, "max_delay_s": 1}


@pytest.fixture
def live_api(live_settings: DialerSettings) -> Iterator[TestClient]:
    with TestClient(build_asgi_app(live_settings)) as client:
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        yield client


def configure(emulator: str, numbers: dict[str, dict[str, Any]]) -> None:
    httpx.post(f"{emulator}/emulator/numbers", json=numbers, timeout=5).raise_for_status()


def emulator_calls(emulator: str, to: str) -> list[dict[str, Any]]:
    return [c for c in httpx.get(f"{emulator}/emulator/calls", timeout=5).json() if c["to"] == to]


def wait_terminal(api: TestClient, job_id: str, timeout_s: float = 20) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def done() -> dict[str, Any] | None:
        last.update(api.get(f"/v1/calls/{job_id}").json())
        return dict(last) if last["terminal"] else None
    try:
        return wait_for(done, timeout_s, f"dial job {job_id} to finish", 0.1)  # type: ignore[return-value]
    except AssertionError:
        raise AssertionError(f"dial job did not finish: {json.dumps(last)[:3000]}") from None


def test_outcomes_retries_and_greeting(live_api: TestClient, live_settings: DialerSettings, emulator: str,
                                       celery_workers: CeleryWorkers) -> None:
    configure(emulator, {"+14155550001": {"answer": "human"}, "+14155550002": {"answer": "busy"},
                         "+14155550003": {"answer": "no-answer"}, "+14155550004": {"answer": "fail"}})
    metrics_port = free_port()
    celery_workers.start("w1", live_settings.model_copy(update={"dialer_metrics_port": metrics_port}))
    human = live_api.post("/v1/calls", json={"to": "+14155550001", "agent_profile": "sales",
                                             "variables": {"name": "Sam", "order_id": "A-7"}}).json()
    others = {number: live_api.post("/v1/calls", json={"to": number, "max_attempts": 2, "retry": FAST_RETRY}
                                    ).json()["id"] for number in ("+14155550002", "+14155550003", "+14155550004")}
    job = wait_terminal(live_api, human["id"])
    assert (job["state"], job["outcome"], job["attempt"]) == ("completed", "completed", 1), celery_workers.logs()
    [call] = emulator_calls(emulator, "+14155550001")
    assert call["call_sid"] == job["call_sid"]
    report = httpx.get(f"{emulator}/emulator/calls/{call['call_sid']}").json()
    assert {"verb": "Say", "text": "Hi Sam, this is Ava from Example Co."} in report["twiml"]
    kinds = [e["kind"] for e in job["events"]]
    assert kinds[0] == "job.created" and kinds[-1] == "job.completed" and "placed" in kinds
    statuses = [e["call_status"] for e in job["events"] if e["kind"] == "call.status"]
    assert set(statuses) >= {"initiated", "ringing", "in-progress", "completed"}

    for number, expected in (("+14155550002", "busy"), ("+14155550003", "no-answer"), ("+14155550004", "failed")):
        job = wait_terminal(live_api, others[number])
        assert (job["state"], job["outcome"], job["attempt"]) == ("failed", expected, 2), (number, job)
        assert [a["result"] for a in job["attempts"]] == [expected, expected]
        assert len(emulator_calls(emulator, number)) == 2  # one call per attempt, never more
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'voicebot_dial_placements_total{result="placed"} 7.0' in metrics
    assert 'voicebot_dial_retries_total{reason="busy"} 1.0' in metrics


def test_answering_machine_policies(live_api: TestClient, live_settings: DialerSettings, emulator: str,
                                    celery_workers: CeleryWorkers) -> None:
    configure(emulator, {"+14155550011": {"answer": "voicemail", "greeting_s": 0.3},
                         "+14155550012": {"answer": "voicemail", "greeting_s": 0.3}})
    celery_workers.start("w1", live_settings)
    voicemail = live_api.post("/v1/calls", json={"to": "+14155550011", "agent_profile": "sales",
                                                 "machine_detection": "voicemail"}).json()["id"]
    hangup = live_api.post("/v1/calls", json={"to": "+14155550012", "agent_profile": "sales",
                                              "machine_detection": "hangup"}).json()["id"]
    job = wait_terminal(live_api, voicemail)
    assert (job["state"], job["outcome"]) == ("completed", "machine"), job
    assert job["answered_by"] == "machine_end_beep"
    report = httpx.get(f"{emulator}/emulator/calls/{job['call_sid']}").json()
    said = [t["text"] for t in report["twiml"] if t["verb"] == "Say"]
    assert said[-1] == "Hi, this is Ava from Example Co. Please call us back."
    assert "machine_voicemail_left" in [e["kind"] for e in job["events"]]

    job = wait_terminal(live_api, hangup)
    assert (job["state"], job["outcome"], job["answered_by"]) == ("completed", "machine", "machine_start")
    report = httpx.get(f"{emulator}/emulator/calls/{job['call_sid']}").json()
    assert "Please call us back." not in json.dumps(report["twiml"])
    assert "machine_hung_up" in [e["kind"] for e in job["events"]]


def test_async_voicemail_has_the_jobs_variables(live_api: TestClient, live_settings: DialerSettings, emulator: str,
                                                celery_workers: CeleryWorkers) -> None:
    configure(emulator, {"+14155550013": {"answer": "voicemail", "greeting_s": 0.3}})
    celery_workers.start("w1", live_settings)  # async AMD: the dialer's worker leaves the message
    job_id = live_api.post("/v1/calls", json={"to": "+14155550013", "agent_profile": "renewals",
                                              "machine_detection": "voicemail",
                                              "variables": {"name": "Ada", "order_id": "B-2"}}).json()["id"]
    job = wait_terminal(live_api, job_id)
    assert (job["state"], job["outcome"]) == ("completed", "machine"), job
    report = httpx.get(f"{emulator}/emulator/calls/{job['call_sid']}").json()
    said = [t["text"] for t in report["twiml"] if t["verb"] == "Say"]
    assert said[-1] == "Hi Ada, this is Ava from Example Co about order B-2. Please call us back."


def test_do_not_call_checked_before_placement(live_api: TestClient, live_settings: DialerSettings,
                                              emulator: str, celery_workers: CeleryWorkers) -> None:
    job_id = live_api.post("/v1/calls", json={"to": "+14155550021"}).json()["id"]
    live_api.post("/v1/do-not-call", json={"numbers": ["+14155550021"]})  # added after the job was queued
    celery_workers.start("w1", live_settings)
    job = wait_terminal(live_api, job_id)
    assert (job["state"], job["outcome"]) == ("failed", "do-not-call")
    assert emulator_calls(emulator, "+14155550021") == []


def test_cancel_hangs_up_live_call(live_api: TestClient, live_settings: DialerSettings, emulator: str,
                                   celery_workers: CeleryWorkers) -> None:
    # A long greeting keeps the call up long enough to cancel it mid-call.
    configure(emulator, {"+14155550031": {"answer": "human"}})
    celery_workers.start("w1", live_settings)
    job_id = live_api.post("/v1/calls", json={
        "to": "+14155550031", "agent_profile": "sales",
        "overrides": {"greeting": {"outbound": "Hello " + "there " * 60}}}).json()["id"]
    wait_for(lambda: live_api.get(f"/v1/calls/{job_id}").json()["state"] == "in-progress", 15, "answer")
    canceled = live_api.post(f"/v1/calls/{job_id}/cancel").json()
    assert canceled["state"] == "canceled"
    sid = live_api.get(f"/v1/calls/{job_id}").json()["call_sid"]
    report = httpx.get(f"{emulator}/emulator/calls/{sid}/wait", params={"timeout": 10}).json()
    assert report["status"] == "completed" and report["duration"] < 10


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []
    refused: ClassVar[list[tuple[bytes, str]]] = []  # (body, Voicebot-Event-Id header)
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            _Receiver.refused.append((body, self.headers.get(EVENT_ID_HEADER, "")))
            self.send_response(503)
        else:
            _Receiver.received.append((body, self.headers.get(SIGNATURE_HEADER, "")))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_signed_webhooks_are_retried(live_api: TestClient, live_settings: DialerSettings, emulator: str,
                                     celery_workers: CeleryWorkers) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        celery_workers.start("w1", live_settings)
        job_id = live_api.post("/v1/calls", json={"to": "+14155550041", "webhook_url": url,
                                                  "metadata": {"crm": "9"}}).json()["id"]
        wait_terminal(live_api, job_id)

        def kinds() -> list[str]:
            return [json.loads(body)["kind"] for body, _ in _Receiver.received]
        wait_for(lambda: "job.completed" in kinds() and "job.created" in kinds(), 15, "webhooks")
        secret = live_settings.dialer_webhook_secret.get_secret_value()
        for body, signature in _Receiver.received:
            assert verify_signature(secret, body, signature)
            assert json.loads(body)["metadata"] == {"crm": "9"}
            assert not verify_signature("wrong-secret", body, signature)
        ids = [json.loads(body)["event_id"] for body, _ in _Receiver.received]
        assert len(ids) == len(set(ids))  # one id per event
        [(refused_body, refused_id)] = _Receiver.refused
        assert refused_id == json.loads(refused_body)["event_id"]
        assert refused_body in [body for body, _ in _Receiver.received]  # its retry: same id, same signed body
    finally:
        server.shutdown()


def test_schedule_survives_worker_restart(live_api: TestClient, live_settings: DialerSettings, emulator: str,
                                          celery_workers: CeleryWorkers) -> None:
    due = time.time() + 2.5
    job_id = live_api.post("/v1/calls", json={
        "to": "+14155550051", "schedule_at": datetime.fromtimestamp(due, UTC).isoformat()}).json()["id"]
    first = celery_workers.start("first", live_settings)
    time.sleep(1.0)
    celery_workers.kill(first)  # the only worker dies before the job is due
    assert live_api.get(f"/v1/calls/{job_id}").json()["state"] == "scheduled"
    celery_workers.start("second", live_settings)
    job = wait_terminal(live_api, job_id)
    assert job["state"] == "completed"
    [placed] = [e for e in job["events"] if e["kind"] == "placed"]
    assert placed["granted_at"] >= due - 0.01


def test_sync_machine_detection_through_twiml(live_api: TestClient, live_settings: DialerSettings,
                                              emulator: str, celery_workers: CeleryWorkers) -> None:
    configure(emulator, {"+14155550061": {"answer": "voicemail", "greeting_s": 0.3}})
    celery_workers.start("w1", live_settings.model_copy(update={"dialer_amd_mode": "sync"}))
    job_id = live_api.post("/v1/calls", json={"to": "+14155550061", "agent_profile": "sales",
                                              "machine_detection": "voicemail"}).json()["id"]
    job = wait_terminal(live_api, job_id)
    assert (job["state"], job["outcome"], job["answered_by"]) == ("completed", "machine", "machine_end_beep")
    report = httpx.get(f"{emulator}/emulator/calls/{job['call_sid']}").json()
    assert [t["text"] for t in report["twiml"] if t["verb"] == "Say"] == [
        "Hi, this is Ava from Example Co. Please call us back."]


def test_reconcile_placements_of_a_dead_worker(live_api: TestClient, live_settings: DialerSettings,
                                               emulator: str) -> None:
    """A worker died after marking jobs 'placing': one call had reached Twilio, one had not."""
    dialer = DialerService(live_settings)
    reached = live_api.post("/v1/calls", json={"to": "+14155550071", "retry": FAST_RETRY}).json()["id"]
    lost = live_api.post("/v1/calls", json={"to": "+14155550072", "retry": FAST_RETRY}).json()["id"]
    long_ago = time.time() - 60
    for job_id in (reached, lost):
        dialer.redis.zrem(dialer.keys.dial_schedule(), job_id)
        dialer.store.update(job_id, state="placing", placing_at=time.time() - 1)
        dialer.redis.zadd(dialer.keys.dial_placing(), {job_id: long_ago})
    # The dead worker's REST call for `reached` (no callbacks reach us: the job URL is not ours).
    twilio = dialer.twilio
    sid = twilio.calls.create(to="+14155550071", from_=dialer.store.get(reached)["from"],
                              twiml="<Response><Pause length=\"5\"/></Response>").sid
    assert dialer.reconcile_stuck_placements() == 1
    adopted = dialer.store.get(reached)
    assert (adopted["call_sid"], adopted["attempt"]) == (sid, 1)
    assert adopted["state"] in ("ringing", "in-progress")
    # Twilio lists no call for `lost`: it is asked once more a placing timeout later.
    assert dialer.store.get(lost)["state"] == "placing"
    dialer.redis.zadd(dialer.keys.dial_placing(), {lost: long_ago})
    assert dialer.reconcile_stuck_placements() == 1
    retried = dialer.store.get(lost)
    assert (retried["state"], retried["attempt"], retried["attempts"][0]["result"]) == (
        "scheduled", 2, "placement-lost")
    assert dialer.reconcile_stuck_placements() == 0  # each stuck placement is handled once
    assert len(emulator_calls(emulator, "+14155550072")) == 0

    # Its status callbacks never reach us either: once the call is old and silent, the
    # reconciler asks Twilio and ends the job.
    wait_for(lambda: httpx.get(f"{emulator}/emulator/calls/{sid}").json()["status"] == "in-progress", 10,
             "the adopted call to be answered")
    twilio.calls(sid).update(status="completed")
    dialer.redis.zadd(dialer.keys.outbound_active(), {reached: time.time() - 3600})
    assert dialer.reconcile_silent_calls() == 1
    ended = dialer.store.get(reached)
    assert (ended["state"], ended["outcome"]) == ("completed", "completed")
    assert dialer.redis.zscore(dialer.keys.outbound_active(), reached) is None


def test_a_429_on_create_waits_retry_after_for_the_same_attempt(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(status=429, made_after_s=None, retry_after="3"))
    job_id, *_ = task = new_placement(api, dialer, "+14155550906")
    refused_at = time.time()
    assert dialer.place(*task) == "rate-limited"
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"], job.get("attempts") or []) == ("scheduled", 1, [])
    due = dialer.redis.zscore(dialer.keys.dial_schedule(), job_id)
    assert due >= refused_at + 3
    assert place_due(dialer) == []  # not before Retry-After has passed
    dialer.redis.zadd(dialer.keys.dial_schedule(), {job_id: time.time()})  # ... as if it had
    assert place_due(dialer) == ["placed"]
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"]) == ("ringing", 1)
    assert len(calls_stand_in.creates) == 2 and len(calls_stand_in.calls) == 1


def test_429s_on_create_are_bounded_then_the_job_fails_rate_limited(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers += [CreateAnswer(status=429, made_after_s=None, retry_after="0")] * 10
    job_id, *_ = task = new_placement(api, dialer, "+14155550907")
    results = [dialer.place(*task)]
    while results[-1] == "rate-limited" and dialer.store.get(job_id)["state"] == "scheduled":
        results += place_due(dialer)
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"], job["attempt"]) == ("failed", "rate-limited", 1)
    assert results == ["rate-limited"] * (MAX_RATE_LIMITED + 1)
    assert len(calls_stand_in.creates) == MAX_RATE_LIMITED + 1 and calls_stand_in.calls == []


def test_a_retry_after_beyond_the_bound_fails_the_job_at_once(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    calls_stand_in.create_answers.append(CreateAnswer(status=429, made_after_s=None, retry_after="3600"))
    job_id, *_ = task = new_placement(api, stand_in_dialer, "+14155550908")
    assert stand_in_dialer.place(*task) == "rate-limited"
    job = stand_in_dialer.store.get(job_id)
    assert (job["state"], job["outcome"]) == ("failed", "rate-limited")


def test_a_create_answering_after_its_attempt_was_given_up_is_hung_up(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(answer_after_s=0.6))
    job_id, *_ = task = new_placement(api, dialer, "+14155550909")
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(dialer.place(*task)))
    worker.start()
    wait_for(lambda: calls_stand_in.creates, 5, "the create to reach Twilio")
    with dialer.store.locked(job_id):  # meanwhile the reconciler gave the attempt up
        dialer.lifecycle.finish(dialer.store.get(job_id), "failed", "placement-unknown")
    worker.join(10)
    assert results == ["placed"]
    [call] = calls_stand_in.calls
    assert calls_stand_in.updates == [{"sid": call["sid"], "Status": "canceled"}]
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"], job.get("call_sid", "")) == ("failed", "placement-unknown", "")
    assert "late_call_hung_up" in [e["kind"] for e in dialer.store.events(job_id)]
