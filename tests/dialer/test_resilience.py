"""Many jobs across two real Celery worker processes: pacing, and a kill -9 mid-campaign."""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis
from dialer_helpers import API_KEY, CeleryWorkers, wait_for
from fastapi.testclient import TestClient

from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.rates import max_in_any_window
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.settings import DialerSettings

FAST_RETRY = {"initial_delay_s": 0.2, "multiplier": 1, "max_delay_s": 1}


@pytest.fixture
def paced_settings(live_settings: DialerSettings) -> DialerSettings:
    return live_settings.model_copy(update={"dialer_account_cps": 5, "dialer_number_cps": 3,
                                            "dialer_from_numbers": "+15550000001,+15550000002"})


@pytest.fixture
def paced_api(paced_settings: DialerSettings) -> Iterator[TestClient]:
    with TestClient(build_asgi_app(paced_settings)) as client:
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        yield client


def campaign_jobs(api: TestClient, campaign_id: str) -> list[dict]:
    jobs, cursor = [], 0
    while cursor is not None:
        page = api.get("/v1/calls", params={"campaign_id": campaign_id, "limit": 100, "cursor": cursor}).json()
        jobs += page["items"]
        cursor = page["next_cursor"]
    return jobs


def wait_campaign_done(api: TestClient, campaign_id: str, timeout_s: float) -> dict:
    return wait_for(lambda: (p := api.get(f"/v1/campaigns/{campaign_id}").json())["done"] == p["total"] and p,
                    timeout_s, "the campaign to finish", 0.2)  # type: ignore[return-value]


def placements(api: TestClient, job_ids: list[str]) -> list[dict]:
    return [e for job_id in job_ids for e in api.get(f"/v1/calls/{job_id}").json()["events"] if e["kind"] == "placed"]


def test_pacing_across_two_workers(paced_api: TestClient, paced_settings: DialerSettings, emulator: str,
                                   celery_workers: CeleryWorkers) -> None:
    count = 20
    contacts = [{"to": f"+1415555{2000 + i}"} for i in range(count)]
    numbers = {c["to"]: {"answer": "busy"} for c in contacts}
    httpx.post(f"{emulator}/emulator/numbers", json=numbers, timeout=5).raise_for_status()
    campaign = paced_api.post("/v1/campaigns", json={"contacts": contacts, "max_attempts": 1,
                                                     "calls_per_second": 100, "max_concurrent_calls": 100}).json()
    celery_workers.start("w1", paced_settings)
    celery_workers.start("w2", paced_settings)
    wait_campaign_done(paced_api, campaign["id"], 30)
    jobs = campaign_jobs(paced_api, campaign["id"])
    placed = placements(paced_api, [j["id"] for j in jobs])
    assert len(placed) == count
    granted = sorted(e["granted_at"] for e in placed)
    by_number: dict[str, list[float]] = {}
    for job in jobs:
        by_number.setdefault(job["from"], []).extend(
            e["granted_at"] for e in placements(paced_api, [job["id"]]))
    # Never above the limits in any 1 s window (account 5/s; each caller ID 3/s).
    assert max_in_any_window(granted) <= 5
    assert all(max_in_any_window(times) <= 3 for times in by_number.values())
    # No idle gaps: the busiest limit allows 5/s, so 20 calls need just over 3 s; allow scheduling noise.
    span = granted[-1] - granted[0]
    assert 3.0 <= span <= 4.8, span
    assert len({e["placed_by"] for e in placed}) == 2, "both worker processes placed calls"


def test_kill_9_mid_campaign(paced_api: TestClient, paced_settings: DialerSettings, emulator: str,
                             celery_workers: CeleryWorkers) -> None:
    count = 16
    contacts = [{"to": f"+1415555{3000 + i}", "variables": {"name": f"C{i}"}} for i in range(count)]
    campaign = paced_api.post("/v1/campaigns", json={
        "contacts": contacts, "agent_profile": "sales", "max_attempts": 3, "retry": FAST_RETRY,
        "calls_per_second": 4, "max_concurrent_calls": 6}).json()
    victim = celery_workers.start("victim", paced_settings)
    celery_workers.start("survivor", paced_settings)
    # Kill the victim right after one of its placements, while it holds its next job.
    wait_for(lambda: any(e["placed_by"].endswith(f":{victim.pid}") for e in
                         placements(paced_api, [j["id"] for j in campaign_jobs(paced_api, campaign["id"])])),
             20, "a placement by the victim", 0.02)
    celery_workers.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    progress = wait_campaign_done(paced_api, campaign["id"], 60)
    assert progress["states"] == {"completed": count}, progress
    jobs = campaign_jobs(paced_api, campaign["id"])
    dialed = Counter(c["to"] for c in httpx.get(f"{emulator}/emulator/calls", timeout=5).json())
    assert all(dialed[job["to"]] == 1 for job in jobs), dialed  # nobody was dialed twice
    assert {job["outcome"] for job in jobs} == {"completed"}
    assert any(e["granted_at"] > killed_at for e in placements(paced_api, [j["id"] for j in jobs]))
    recovery = Counter(e["kind"] for j in jobs for e in paced_api.get(f"/v1/calls/{j['id']}").json()["events"]
                       if e["kind"] in ("redispatched", "placement_lost", "placement_reconciled"))
    print("recovery paths used:", dict(recovery))


def test_the_jobs_a_killed_worker_held_are_placed_by_another_within_seconds(
        paced_api: TestClient, paced_settings: DialerSettings, emulator: str, celery_workers: CeleryWorkers,
        sync_redis: redis.Redis) -> None:
    # The chart's shape (prefork pool) and the default lease: a dead worker's jobs must not wait 60 s for it.
    settings = paced_settings.model_copy(update={
        "dialer_dispatch_lease_s": DialerSettings.model_fields["dialer_dispatch_lease_s"].default})
    keys = RedisKeys(settings.redis_prefix)
    count = 10
    contacts = [{"to": f"+1415555{6000 + i}"} for i in range(count)]
    httpx.post(f"{emulator}/emulator/numbers", json={c["to"]: {"answer": "busy"} for c in contacts},
               timeout=5).raise_for_status()
    campaign = paced_api.post("/v1/campaigns", json={"contacts": contacts, "max_attempts": 1,
                                                     "calls_per_second": 1, "max_concurrent_calls": 10}).json()
    victim = celery_workers.start("victim", settings, prefork=2)
    victim_id = f"{socket.gethostname()}:{victim.pid}"

    def held_by_victim() -> list[str]:
        return [job for job, worker in sync_redis.hgetall(keys.dial_holders()).items() if worker == victim_id]
    wait_for(held_by_victim, 30, "the victim to hold a job", 0.05)
    survivor = celery_workers.start("survivor", settings, prefork=2)
    wait_for(lambda: sync_redis.zscore(keys.dialer_workers(), f"{socket.gethostname()}:{survivor.pid}"), 30,
             "the survivor to beat", 0.05)
    held = held_by_victim()
    celery_workers.kill(victim, signal.SIGKILL)  # the whole process tree
    killed_at = time.time()
    assert held

    def ended(job_id: str) -> dict | None:
        view = paced_api.get(f"/v1/calls/{job_id}").json()
        return view if view["terminal"] else None
    views = [wait_for(lambda j=j: ended(j), 25, f"held job {j} to end", 0.2) for j in held]
    for view in views:  # each taken back by the survivor: dispatched again, or its create looked up
        kinds = [e["kind"] for e in view["events"] if e["at"] > killed_at]
        assert {"redispatched", "placement_reconciled", "placement_not_found"} & set(kinds), view["events"]
    wait_campaign_done(paced_api, campaign["id"], 30)
    dialed = Counter(c["to"] for c in httpx.get(f"{emulator}/emulator/calls", timeout=5).json())
    assert all(dialed[c["to"]] <= 1 for c in contacts), dialed  # max_attempts 1: nobody dialed twice


def test_campaign_concurrency_cap(paced_api: TestClient, paced_settings: DialerSettings, emulator: str,
                                  celery_workers: CeleryWorkers) -> None:
    contacts = [{"to": f"+1415555{5000 + i}", "variables": {"name": f"N{i}"}} for i in range(6)]
    campaign = paced_api.post("/v1/campaigns", json={
        "contacts": contacts, "agent_profile": "sales", "calls_per_second": 5, "max_concurrent_calls": 2}).json()
    celery_workers.start("w1", paced_settings)
    celery_workers.start("w2", paced_settings)
    assert wait_campaign_done(paced_api, campaign["id"], 60)["states"] == {"completed": 6}
    spans = []
    for job in campaign_jobs(paced_api, campaign["id"]):
        events = paced_api.get(f"/v1/calls/{job['id']}").json()["events"]
        start = next(e["granted_at"] for e in events if e["kind"] == "placed")
        end = next(e["at"] for e in events if e["kind"] == "job.completed")
        spans.append((start, end))
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2, spans  # the cap was reached and never exceeded
