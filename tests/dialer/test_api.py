"""REST API against real Redis: auth, validation, idempotency, size limits, DNC, campaigns."""

from __future__ import annotations

import asyncio
import json
import threading

import redis
from dialer_helpers import API_KEY
from fastapi.testclient import TestClient

from voicebot_core.calls import CallStore
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.processes import free_port
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings

CALL = {"to": "+14155550123", "agent_profile": "sales", "variables": {"name": "Sam", "order_id": "A-1"}}


def stored_keys(sync_redis: redis.Redis, prefix: str) -> list[str]:
    return sorted(sync_redis.scan_iter(f"{prefix}:*"))


def test_api_key_required(api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = api.post("/v1/calls", json=CALL, headers=headers)
        assert response.status_code == 401, response.text
        assert "API key" in response.json()["error"] and response.json()["detail"] == []
    assert api.get("/v1/calls", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert stored_keys(sync_redis, dialer_settings.redis_prefix) == []
    assert api.post("/v1/calls", json=CALL, headers={"Authorization": "Bearer second-key"}).status_code == 201


def test_create_and_get_call(api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    response = api.post("/v1/calls", json={**CALL, "to": "+1 (415) 555-0123", "metadata": {"crm": 7},
                                           "machine_detection": "voicemail"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["to"] == "+14155550123" and job["state"] == "scheduled" and job["attempt"] == 1
    assert job["from"] in ("+15550000001", "+15550000002")
    # The fields the gateway and bot-worker read from the job hash.
    stored = sync_redis.hgetall(f"{dialer_settings.redis_prefix}:dial-job:{job['id']}")
    assert stored["agent_profile"] == "sales" and stored["machine_detection"] == "voicemail"
    assert json.loads(stored["variables"]) == {"name": "Sam", "order_id": "A-1"}
    assert json.loads(stored["overrides"]) == {}
    assert sync_redis.zscore(f"{dialer_settings.redis_prefix}:dial-schedule", job["id"]) is not None
    detail = api.get(f"/v1/calls/{job['id']}").json()
    assert detail["metadata"] == {"crm": 7}
    assert [e["kind"] for e in detail["events"]] == ["job.created"]
    assert api.get("/v1/calls/dj_missing").status_code == 404


def test_call_detail_has_the_call_records_recording_and_transcript(api: TestClient,
                                                                   dialer_settings: DialerSettings) -> None:
    dialer = DialerService(dialer_settings)
    recorded = "s3://call-data/calls/CA-rec-1/recording/"
    transcript = [{"role": "assistant", "text": "Hi Sam"}, {"role": "user", "text": "Hello"}]

    async def bot_worker_writes() -> None:  # as the bot-worker does at the end of the call
        client = connect(dialer_settings.redis_url)
        calls = CallStore(client, RedisKeys(prefix=dialer_settings.redis_prefix))
        await calls.upsert("CA-rec-1", recording=recorded)
        await calls.save_transcript("CA-rec-1", transcript)
        await client.aclose()

    asyncio.run(bot_worker_writes())
    job_id = api.post("/v1/calls", json=CALL).json()["id"]
    dialer.handle_callback(job_id, 1, "status", {"CallSid": "CA-rec-1", "CallStatus": "completed"})
    detail = api.get(f"/v1/calls/{job_id}").json()
    # the bot-worker's recording is served by this API only (routes_call_media)
    assert (detail["recording_url"], detail["transcript"]) == (f"/v1/calls/{job_id}/recording", transcript)
    # Twilio's own recording (RecordingUrl of the final status callback) wins.
    twilio_job = api.post("/v1/calls", json={**CALL, "to": "+14155550124"}).json()["id"]
    dialer.handle_callback(twilio_job, 1, "status", {"CallSid": "CA-rec-1", "CallStatus": "completed",
                                                     "RecordingUrl": "https://api.twilio.com/RE1"})
    assert api.get(f"/v1/calls/{twilio_job}").json()["recording_url"] == "https://api.twilio.com/RE1"
    # No call record yet: nothing to show.
    bare = api.post("/v1/calls", json={**CALL, "to": "+14155550125"}).json()["id"]
    dialer.handle_callback(bare, 1, "status", {"CallSid": "CA-none", "CallStatus": "ringing"})
    assert api.get(f"/v1/calls/{bare}").json()["recording_url"] == ""


def test_validation_is_clear_and_stores_nothing(api: TestClient, sync_redis: redis.Redis,
                                                 dialer_settings: DialerSettings) -> None:
    bad_bodies = {
        "to": {**CALL, "to": "5551234"},
        "impossible": {**CALL, "to": "+1555"},
        "from": {**CALL, "from": "not a number"},
        "timezone": {**CALL, "calling_window": {"timezone": "Mars/Base", "start": "09:00", "end": "17:00"}},
        "window order": {**CALL, "calling_window": {"timezone": "UTC", "start": "18:00", "end": "09:00"}},
        "naive schedule": {**CALL, "schedule_at": "2030-01-01T09:00:00"},
        "attempts": {**CALL, "max_attempts": 0},
        "policy": {**CALL, "machine_detection": "sometimes"},
        "unknown field": {**CALL, "colour": "blue"},
        "profile": {**CALL, "agent_profile": "nobody"},
        "webhook": {**CALL, "webhook_url": "ftp://x"},
        # Each of these once crashed the route (500) or was taken though the document forbids it.
        "window with an offset": {**CALL, "calling_window": {"timezone": "UTC", "start": "09:00Z", "end": "10:00"}},
        "window as numbers": {**CALL, "calling_window": {"timezone": "UTC", "start": 32400, "end": 36000}},
        "zone file that is no zone": {**CALL, "calling_window": {"timezone": "posixrules", "start": "09:00",
                                                                 "end": "10:00"}},
        "year 9999 in a window": {**CALL, "schedule_at": "9999-12-31T23:59:59-23:59",
                                  "calling_window": {"timezone": "Pacific/Kiritimati", "start": "09:00",
                                                     "end": "10:00"}},
        "schedule as a number": {**CALL, "schedule_at": 1893456000},
        "attempts as a string": {**CALL, "max_attempts": "3"},
        "record as a string": {**CALL, "record": "yes"},
        "number with 16 digits": {**CALL, "to": "+1415555012345678"},
        "trailing newline": {**CALL, "to": "+14155550123\n"},
    }
    for name, body in bad_bodies.items():
        response = api.post("/v1/calls", json=body)
        assert response.status_code == 422, (name, response.text)
        detail = response.json()["detail"]
        assert detail and all(d["message"] for d in detail), name
    messages = json.dumps(api.post("/v1/calls", json=bad_bodies["to"]).json())
    assert "E.164" in messages
    assert "unknown time zone" in json.dumps(api.post("/v1/calls", json=bad_bodies["timezone"]).json())
    assert "unknown agent profile" in json.dumps(api.post("/v1/calls", json=bad_bodies["profile"]).json())
    assert api.post("/v1/calls", content=b"{not json", headers={"Content-Type": "application/json"}
                    ).status_code == 422
    garbled = api.post("/v1/calls", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert garbled.status_code in (400, 422) and set(garbled.json()) == {"error", "detail"}
    assert api.get("/v1/calls", params={"to": ""}).status_code == 422
    assert api.get("/v1/calls", params={"cursor": 2**53}).status_code == 422
    assert api.get("/v1/events", params={"after": "not-an-id", "wait_s": 0}).status_code == 422
    assert stored_keys(sync_redis, dialer_settings.redis_prefix) == []


def test_integers_may_be_written_as_floats(api: TestClient) -> None:
    job = api.post("/v1/calls", json={**CALL, "max_attempts": 2.0, "calling_window": {
        "timezone": "UTC", "start": "09:00", "end": "17:00", "days": [0.0, 4]}})
    assert job.status_code == 201, job.text
    assert job.json()["max_attempts"] == 2


def test_request_size_limit(api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    huge = {**CALL, "metadata": {"blob": "x" * (dialer_settings.dialer_max_request_bytes + 10)}}
    response = api.post("/v1/calls", json=huge)
    assert response.status_code == 413 and response.json()["error"].startswith("request body larger than")
    assert stored_keys(sync_redis, dialer_settings.redis_prefix) == []


def test_idempotency_key(api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    first = api.post("/v1/calls", json=CALL, headers={"Idempotency-Key": "order-1"})
    again = api.post("/v1/calls", json=CALL, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    changed = api.post("/v1/calls", json={**CALL, "to": "+14155550199"}, headers={"Idempotency-Key": "order-1"})
    assert changed.status_code == 409
    # Racing duplicates still make one job.
    results: list[int] = []

    def post() -> None:
        results.append(api.post("/v1/calls", json=CALL, headers={"Idempotency-Key": "race"}).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 7 + [201]
    assert sync_redis.zcard(f"{dialer_settings.redis_prefix}:dial-jobs") == 2


def test_list_filter_paginate_cancel(api: TestClient) -> None:
    ids = [api.post("/v1/calls", json={**CALL, "to": f"+1415555{1000 + i}"}).json()["id"] for i in range(5)]
    canceled = api.post(f"/v1/calls/{ids[0]}/cancel")
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
    # The deprecated DELETE alias cancels too; a canceled job stays readable.
    assert api.delete(f"/v1/calls/{ids[0]}").json()["state"] == "canceled"
    assert api.get(f"/v1/calls/{ids[0]}").status_code == 200
    assert api.post("/v1/calls/dj_missing/cancel").json() == {"error": "no dial job dj_missing", "detail": []}
    page1 = api.get("/v1/calls", params={"limit": 3}).json()
    page2 = api.get("/v1/calls", params={"limit": 3, "cursor": page1["next_cursor"]}).json()
    seen = [c["id"] for c in page1["items"] + page2["items"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert [c["id"] for c in api.get("/v1/calls", params={"state": "canceled"}).json()["items"]] == [ids[0]]
    assert [c["id"] for c in api.get("/v1/calls", params={"to": "+14155551003"}).json()["items"]] == [ids[3]]
    events = api.get(f"/v1/calls/{ids[0]}").json()["events"]
    assert [e["kind"] for e in events] == ["job.created", "job.canceled"]


def test_do_not_call_endpoints(api: TestClient) -> None:
    assert api.post("/v1/do-not-call", json={"numbers": ["+14155550123", "+1 415 555 0124"]}).json() == {"added": 2}
    assert api.get("/v1/do-not-call/+14155550124").json()["do_not_call"] is True
    assert sorted(api.get("/v1/do-not-call").json()["numbers"]) == ["+14155550123", "+14155550124"]
    assert api.delete("/v1/do-not-call/+14155550124").json()["removed"] is True
    assert api.get("/v1/do-not-call/+14155550124").json()["do_not_call"] is False
    assert api.post("/v1/do-not-call", json={"numbers": ["12"]}).status_code == 422


def test_campaign_json_and_csv(api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    body = {"name": "renewals", "agent_profile": "sales", "max_concurrent_calls": 2, "calls_per_second": 1,
            "contacts": [{"to": "+14155550101", "variables": {"name": "Ada"}}, {"to": "+14155550102"}]}
    created = api.post("/v1/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["total"] == 2 and campaign["states"] == {"scheduled": 2} and campaign["status"] == "active"
    assert api.post(f"/v1/campaigns/{campaign['id']}/pause").json()["status"] == "paused"
    assert api.post(f"/v1/campaigns/{campaign['id']}/resume").json()["status"] == "active"
    jobs = api.get("/v1/calls", params={"campaign_id": campaign["id"]}).json()["items"]
    assert {j["to"] for j in jobs} == {"+14155550101", "+14155550102"}

    csv_text = "to,name,meta_crm\n+14155550201,Bea,11\n+14155550202,Cy,12\n"
    uploaded = api.post("/v1/campaigns/upload", files={"contacts": ("c.csv", csv_text, "text/csv")},
                        data={"campaign": json.dumps({"agent_profile": "sales", "calls_per_second": 2})})
    assert uploaded.status_code == 201, uploaded.text
    upload_jobs = api.get("/v1/calls", params={"campaign_id": uploaded.json()["id"]}).json()["items"]
    assert sorted(j["variables"]["name"] for j in upload_jobs) == ["Bea", "Cy"]
    assert sorted(j["metadata"]["crm"] for j in upload_jobs) == ["11", "12"]

    jobs_before = sync_redis.zcard(f"{dialer_settings.redis_prefix}:dial-jobs")
    bad_csv = "to,name\n+14155550301,Al\nnot-a-number,Bo\n"
    rejected = api.post("/v1/campaigns/upload", files={"contacts": ("c.csv", bad_csv, "text/csv")})
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["field"] == "contacts.row3"
    assert api.post("/v1/campaigns", json={**body, "contacts": [{"to": "+1"}]}).status_code == 422
    assert sync_redis.zcard(f"{dialer_settings.redis_prefix}:dial-jobs") == jobs_before

    canceled = api.post(f"/v1/campaigns/{campaign['id']}/cancel").json()
    assert canceled["status"] == "canceled" and canceled["states"] == {"canceled": 2}
    for job in jobs:
        detail = api.get(f"/v1/calls/{job['id']}").json()
        assert detail["outcome"] == "canceled"
        assert [e["kind"] for e in detail["events"]][-1] == "job.canceled"
        assert sync_redis.zscore(f"{dialer_settings.redis_prefix}:dial-schedule", job["id"]) is None
    assert api.post(f"/v1/campaigns/{campaign['id']}/resume").status_code == 409


def test_events_long_poll(api: TestClient) -> None:
    start = api.get("/v1/events", params={"wait_s": 0}).json()
    job_id = api.post("/v1/calls", json=CALL).json()["id"]
    polled = api.get("/v1/events", params={"after": start["next"], "wait_s": 2}).json()
    assert [(e["dial_job_id"], e["kind"]) for e in polled["events"]] == [(job_id, "job.created")]


def test_redis_unreachable_is_a_503_in_the_error_shape(dialer_settings: DialerSettings) -> None:
    gone = dialer_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(build_asgi_app(gone)) as client:
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        for response in (client.get("/v1/calls"), client.post("/v1/calls", json=CALL),
                         client.get("/v1/events", params={"wait_s": 0})):
            assert response.status_code == 503, response.text
            assert response.json()["detail"] == [] and "Redis" in response.json()["error"]
            assert response.headers["retry-after"] == "1"


def test_overrides_outside_the_allow_list_are_refused_and_nothing_is_stored(
        api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    for field, value in (("transfer_number", "+15550109999"), ("transfer_number", "+1555</Number><Dial>+1900"),
                         ("providers", "cloud"), ("provider_options", {"llm_base_url": "http://evil"}),
                         ("tools", ["transfer_to_human"]), ("record", False)):
        body = {**CALL, "overrides": {"goodbye": "Bye", field: value}}
        response = api.post("/v1/calls", json=body)
        assert response.status_code == 422, (field, response.text)
        (error,) = response.json()["detail"]
        assert error["field"] == "body.overrides" and field in error["message"], error
        assert "overridable fields: persona, voice, language, greeting" in error["message"]
        campaign = api.post("/v1/campaigns", json={"overrides": {field: value}, "contacts": [{"to": CALL["to"]}]})
        assert campaign.status_code == 422 and field in campaign.json()["detail"][0]["message"]
    assert stored_keys(sync_redis, dialer_settings.redis_prefix) == []
    allowed = {"goodbye": "Bye Sam", "greeting": {"outbound": "Hi {name}"}, "voice": "v2", "idle_timeout_s": 8}
    job = api.post("/v1/calls", json={**CALL, "overrides": {**allowed, "persona": None}}).json()
    stored = sync_redis.hgetall(f"{dialer_settings.redis_prefix}:dial-job:{job['id']}")
    assert json.loads(stored["overrides"]) == allowed
