"""The call-records API (/v1/call-records, /v1/workers) against real Redis: records written by the gateway's
and bot-worker's writer (voicebot_core.calls.CallStore), the dialer API as built for production, hang-ups
through the Twilio Calls stand-in."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from helpers.servers import uvicorn_thread
from helpers.twilio_calls_stand_in import CallsStandIn
from voicebot_core.calls import CallStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.call_record_stream import CallRecordStream
from voicebot_dialer.call_record_views import mask_number
from voicebot_dialer.settings import DialerSettings

READ_KEY, PLACE_KEY = "r3ad-k3y-4d2e", "pl4ce-k3y-9a1c"
INBOUND, CAMPAIGN_CALL, RINGING = (f"CA{c * 32}" for c in "abc")
UNKNOWN = "CA" + "f" * 32
CALLER, OUR_NUMBER, CALLEE, OTHER_CALLEE = "+15551234511", "+15550000001", "+14155550123", "+14155550124"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


READ, PLACE = bearer(READ_KEY), bearer(PLACE_KEY)


def with_redis(settings: DialerSettings, act: Callable[[aioredis.Redis, RedisKeys], Awaitable[Any]]) -> Any:
    """Run `act` on an asyncio Redis client of its own (as the gateway and the bot-worker have)."""
    async def run() -> Any:
        client = aioredis.from_url(settings.redis_url, decode_responses=True)
        try:
            return await act(client, RedisKeys(settings.redis_prefix))
        finally:
            await client.aclose()

    return asyncio.run(run())


def with_store(settings: DialerSettings, act: Callable[[CallStore], Awaitable[Any]]) -> Any:
    """Run `act` with the writer the gateway and the bot-worker use."""
    return with_redis(settings, lambda client, keys: act(CallStore(client, keys)))


@pytest.fixture
def settings(dialer_settings: DialerSettings, calls_stand_in: CallsStandIn) -> DialerSettings:
    return dialer_settings.model_copy(update={"dialer_api_keys": f"{READ_KEY}:read,{PLACE_KEY}",
                                              "twilio_api_base_url": calls_stand_in.url})


@pytest.fixture
def client(settings: DialerSettings) -> Iterator[TestClient]:
    with TestClient(build_asgi_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def calls(client: TestClient, settings: DialerSettings, sync_redis: redis.Redis) -> dict[str, Any]:
    """Three calls: an ended inbound one (created at t=1000), a live outbound one of a campaign's dial
    job (t=2000) and a ringing outbound one of a single dial job (t=3000)."""
    campaign = client.post("/v1/campaigns", headers=PLACE,
                           json={"agent_profile": "sales", "contacts": [{"to": CALLEE}]}).json()
    [campaign_job] = client.get("/v1/calls", params={"campaign_id": campaign["id"]}, headers=PLACE).json()["items"]
    solo_job = client.post("/v1/calls", headers=PLACE, json={"to": OTHER_CALLEE, "agent_profile": "sales"}).json()

    async def write(store: CallStore) -> None:
        await store.upsert(INBOUND, direction="inbound", agent_profile="support", status="in-progress",
                           worker_id="w1", attached_at=1001.0, **{"from": CALLER, "to": OUR_NUMBER})
        await store.add_event(INBOUND, "stream_started", worker_id="w1")
        await store.save_transcript(INBOUND, [{"role": "user", "text": "Hi", "at": 1002.0},
                                              {"role": "assistant", "text": "Hello!", "at": 1003.0,
                                               "latency_ms": 640}])
        await store.upsert(INBOUND, status="completed", outcome="completed", end_reason="hangup", ended_at=1031.5,
                           recording="calls/x/recording/")
        await store.upsert(CAMPAIGN_CALL, direction="outbound", agent_profile="sales", status="in-progress",
                           dial_job_id=campaign_job["id"], worker_id="w2", attached_at=time.time() - 10,
                           **{"from": OUR_NUMBER, "to": CALLEE})
        await store.upsert(RINGING, direction="outbound", agent_profile="sales", status="ringing",
                           dial_job_id=solo_job["id"], **{"from": OUR_NUMBER, "to": OTHER_CALLEE})

    with_store(settings, write)
    keys = RedisKeys(settings.redis_prefix)
    for sid, created_at in ((INBOUND, 1000.0), (CAMPAIGN_CALL, 2000.0), (RINGING, 3000.0)):
        sync_redis.zadd(keys.calls_index(), {sid: created_at})  # as if created then
        sync_redis.hset(keys.call(sid), "created_at", created_at)
    return {"campaign_id": campaign["id"], "campaign_job": campaign_job["id"], "solo_job": solo_job["id"]}


def sids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["call_sid"] for item in response.json()["items"]]


def test_lists_calls_of_both_directions_newest_first_and_pages(client: TestClient, calls: dict[str, Any]) -> None:
    assert sids(client.get("/v1/call-records", headers=PLACE)) == [RINGING, CAMPAIGN_CALL, INBOUND]
    first = client.get("/v1/call-records", params={"limit": 2}, headers=PLACE).json()
    assert [i["call_sid"] for i in first["items"]] == [RINGING, CAMPAIGN_CALL] and first["next_cursor"] == 2
    rest = client.get("/v1/call-records", params={"limit": 2, "cursor": 2}, headers=PLACE).json()
    assert [i["call_sid"] for i in rest["items"]] == [INBOUND] and rest["next_cursor"] is None


def test_each_filter(client: TestClient, calls: dict[str, Any]) -> None:
    def listed(**params: Any) -> list[str]:
        return sids(client.get("/v1/call-records", params=params, headers=PLACE))

    assert listed(live="true") == [RINGING, CAMPAIGN_CALL]
    assert listed(live="false") == [INBOUND]
    assert listed(number=CALLER) == [INBOUND]  # the caller's number
    assert listed(number=OUR_NUMBER) == [RINGING, CAMPAIGN_CALL, INBOUND]  # from of two, to of one
    assert listed(number="+1 (415) 555-0123") == [CAMPAIGN_CALL]  # written as people write it
    assert listed(dial_job_id=calls["solo_job"]) == [RINGING]
    assert listed(campaign_id=calls["campaign_id"]) == [CAMPAIGN_CALL]
    assert listed(campaign_id="cmp_none") == []
    assert listed(outcome="completed") == [INBOUND]
    assert listed(direction="inbound") == [INBOUND]
    assert listed(direction="outbound") == [RINGING, CAMPAIGN_CALL]
    assert listed(since=2000) == [RINGING, CAMPAIGN_CALL]
    assert listed(until=2000) == [CAMPAIGN_CALL, INBOUND]
    assert listed(since=1500, until=2500) == [CAMPAIGN_CALL]
    assert listed(direction="outbound", live="true", limit=1) == [RINGING]
    invalid = client.get("/v1/call-records", params={"number": "+1555"}, headers=PLACE)
    assert invalid.status_code == 422, invalid.text
    assert client.get("/v1/call-records", params={"direction": "sideways"}, headers=PLACE).status_code == 422


def test_views_live_and_ended_calls(client: TestClient, calls: dict[str, Any]) -> None:
    items = {i["call_sid"]: i for i in client.get("/v1/call-records", headers=PLACE).json()["items"]}
    assert items[INBOUND] == {
        "call_sid": INBOUND, "direction": "inbound", "from": CALLER, "to": OUR_NUMBER, "agent_profile": "support",
        "status": "completed", "live": False, "worker_id": "w1", "dial_job_id": "", "campaign_id": "",
        "outcome": "completed", "end_reason": "hangup", "created_at": 1000.0, "attached_at": 1001.0,
        "ended_at": 1031.5, "duration_s": 30.5, "recording_url": f"/v1/calls/{INBOUND}/recording"}
    live = items[CAMPAIGN_CALL]
    assert live["live"] is True and live["ended_at"] is None and live["outcome"] == ""
    assert live["campaign_id"] == calls["campaign_id"] and live["dial_job_id"] == calls["campaign_job"]
    assert 9 <= live["duration_s"] < 60  # runs on while live
    ringing = items[RINGING]
    assert ringing["live"] is True and ringing["attached_at"] is None and ringing["duration_s"] is None
    assert ringing["recording_url"] == ""


def test_a_read_key_sees_numbers_masked_and_still_filters_on_them(client: TestClient,
                                                                  calls: dict[str, Any]) -> None:
    assert mask_number("+15551234511") == "+1555•••••11"
    assert mask_number("anonymous") == "•" * 9 and mask_number("") == ""
    masked = client.get("/v1/call-records", params={"number": CALLER}, headers=READ).json()["items"]
    assert [(i["from"], i["to"]) for i in masked] == [("+1555•••••11", "+1555•••••01")]
    full = client.get("/v1/call-records", params={"number": CALLER}, headers=PLACE).json()["items"]
    assert [(i["from"], i["to"]) for i in full] == [(CALLER, OUR_NUMBER)]
    detail = client.get(f"/v1/call-records/{CAMPAIGN_CALL}", headers=READ).json()
    assert (detail["from"], detail["to"]) == ("+1555•••••01", "+1415•••••23")
    assert client.get(f"/v1/call-records/{CAMPAIGN_CALL}", headers=PLACE).json()["to"] == CALLEE


def test_detail_has_events_and_transcript(client: TestClient, calls: dict[str, Any]) -> None:
    detail = client.get(f"/v1/call-records/{INBOUND}", headers=READ).json()
    assert detail["call_sid"] == INBOUND and detail["live"] is False
    assert [(e["kind"], e["worker_id"]) for e in detail["events"]] == [("stream_started", "w1")]
    assert detail["transcript"] == [{"role": "user", "text": "Hi", "at": 1002.0},
                                    {"role": "assistant", "text": "Hello!", "at": 1003.0, "latency_ms": 640}]
    assert client.get(f"/v1/call-records/{RINGING}", headers=READ).json()["transcript"] == []


def test_unknown_and_malformed_call_sids(client: TestClient, calls: dict[str, Any]) -> None:
    for path in (f"/v1/call-records/{UNKNOWN}", f"/v1/call-records/{UNKNOWN}/live"):
        missing = client.get(path, headers=READ)
        assert missing.status_code == 404 and missing.json() == {"error": f"no call record {UNKNOWN}",
                                                                 "detail": []}
    assert client.post(f"/v1/call-records/{UNKNOWN}/hangup", headers=PLACE).status_code == 404
    malformed = client.get("/v1/call-records/dj_123", headers=READ)
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["field"] == "path.call_sid"


def test_hang_up_a_live_call_through_twilio(client: TestClient, calls: dict[str, Any],
                                            calls_stand_in: CallsStandIn) -> None:
    calls_stand_in.make_call(CALLEE, OUR_NUMBER, sid=CAMPAIGN_CALL)
    assert client.post(f"/v1/call-records/{CAMPAIGN_CALL}/hangup", headers=READ).status_code == 403
    answer = client.post(f"/v1/call-records/{CAMPAIGN_CALL}/hangup", headers=PLACE)
    assert answer.status_code == 200, answer.text
    assert answer.json()["call_sid"] == CAMPAIGN_CALL and answer.json()["to"] == CALLEE
    assert calls_stand_in.updates == [{"sid": CAMPAIGN_CALL, "Status": "completed"}]
    [*_, event] = client.get(f"/v1/call-records/{CAMPAIGN_CALL}", headers=READ).json()["events"]
    assert event["kind"] == "hangup_requested" and len(event["api_key_id"]) == 16
    # an ended call: 409, and Twilio is not asked
    ended = client.post(f"/v1/call-records/{INBOUND}/hangup", headers=PLACE)
    assert ended.status_code == 409 and "already ended" in ended.json()["error"]
    assert len(calls_stand_in.updates) == 1


def test_twilio_refusing_the_hang_up_is_a_502(client: TestClient, calls: dict[str, Any],
                                              calls_stand_in: CallsStandIn) -> None:
    calls_stand_in.update_errors.append(400)
    refused = client.post(f"/v1/call-records/{RINGING}/hangup", headers=PLACE)
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"].startswith(f"Twilio refused to hang up call {RINGING}")
    events = client.get(f"/v1/call-records/{RINGING}", headers=READ).json()["events"]
    assert "hangup_requested" not in [e["kind"] for e in events]


def test_workers_listing(client: TestClient, settings: DialerSettings) -> None:
    assert client.get("/v1/workers", headers=READ).json() == {"items": []}
    before = time.time()

    async def register(client: aioredis.Redis, keys: RedisKeys) -> None:
        registry = WorkerRegistry(client, keys)
        await registry.register("worker-1", "ws://10.0.0.5:8765", capacity=4)
        await registry.reserve(INBOUND)
        await registry.heartbeat("worker-1")

    with_redis(settings, register)
    [worker] = client.get("/v1/workers", headers=READ).json()["items"]
    assert {k: worker[k] for k in ("worker_id", "capacity", "active_calls", "free_slots", "draining")} == {
        "worker_id": "worker-1", "capacity": 4, "active_calls": 1, "free_slots": 3, "draining": False}
    assert before <= worker["started_at"] <= worker["last_heartbeat_at"] <= time.time()


# --- following a call live (server-sent events) -----------------------------------------------------

def read_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) of each server-sent event; ('comment', text) of each comment."""
    name, data = "", []
    for line in lines:
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and name:
            yield name, json.loads("\n".join(data))
            name, data = "", []


def test_follow_a_live_call_until_it_ends(settings: DialerSettings, calls: dict[str, Any]) -> None:
    entry = {"role": "user", "text": "Is it open today?", "at": time.time()}
    with uvicorn_thread(build_asgi_app(settings)) as url, httpx.stream(
            "GET", f"{url}/v1/call-records/{CAMPAIGN_CALL}/live", headers=READ, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
        kind, record = next(events)
        assert kind == "record" and record["call_sid"] == CAMPAIGN_CALL and record["live"] is True
        assert record["to"] == "+1415•••••23"  # a read key
        assert next(events) == ("transcript", {"entries": []})
        with_store(settings, lambda store: store.save_transcript(CAMPAIGN_CALL, [entry]))
        assert next(events) == ("transcript", {"entries": [entry]})
        with_store(settings, lambda store: store.upsert(CAMPAIGN_CALL, status="completed", outcome="completed",
                                                        end_reason="hangup", ended_at=time.time()))
        kind, record = next(events)
        assert kind == "record" and record["live"] is False and record["outcome"] == "completed"
        assert next(events) == ("end", {"call_sid": CAMPAIGN_CALL, "outcome": "completed", "end_reason": "hangup"})
        assert list(events) == []  # and the server closed the stream


def test_an_ended_call_gets_its_last_state_and_end_at_once(settings: DialerSettings, calls: dict[str, Any]) -> None:
    with uvicorn_thread(build_asgi_app(settings)) as url, httpx.stream(
            "GET", f"{url}/v1/call-records/{INBOUND}/live", headers=PLACE, timeout=10) as response:
        got = list(read_events(response.iter_lines()))
    assert [kind for kind, _ in got] == ["record", "transcript", "end"]
    assert got[0][1]["from"] == CALLER and len(got[1][1]["entries"]) == 2


async def test_a_quiet_call_gets_keepalives_and_a_gone_client_stops_the_stream(
        settings: DialerSettings, calls: dict[str, Any]) -> None:
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    gone = False

    async def disconnected() -> bool:
        return gone

    stream = CallRecordStream(client, RedisKeys(settings.redis_prefix), full_numbers=True, poll_s=0.05,
                              keepalive_s=0.2)
    events = stream.events(RINGING, disconnected)
    first = await anext(events)
    assert first.startswith("event: record\n") and "event: transcript\n" in first
    assert await anext(events) == ": keepalive\n\n"
    gone = True
    assert [rest async for rest in events] == []
    await client.aclose()
