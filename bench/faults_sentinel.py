"""Fault scenario: the Redis primary dies under Sentinel (faults.py discovers SCENARIOS here).

  redis-failover  a primary, a replica and 3 Sentinels on loopback (tests/helpers/redis_sentinel.py),
                  every service reaching Redis (and the dialer its Celery broker) through the Sentinels;
                  --calls inbound calls and a campaign of min(--contacts, 6) numbers (answer, 1 s, hang
                  up) at --cps; kill -9 of the primary once every call had a caller turn checkpointed
                  and the campaign's first create was seen. recover s: kill -> every Sentinel names the
                  promoted replica and it takes writes; the first service write after it in the notes.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import time
from collections.abc import Callable

import httpx
from fault_harness import (
    OUTBOUND_PROFILE,
    QUICK_HANGUP,
    ROOT,
    Calls,
    CreateWatch,
    Row,
    conversation_figures,
    start_stack,
    stop_stack,
    wait_for,
)

from voicebot_core.redis_client import RedisTarget, connect_sync
from voicebot_core.settings import parse_sentinels

if str(ROOT / "tests") not in sys.path:  # the topology helper the tests use too
    sys.path.insert(0, str(ROOT / "tests"))
from helpers.redis_sentinel import SentinelSet

CAMPAIGN_CONTACTS = 6


def _campaign(stack_urls: dict[str, str], api_key: str, numbers: list[str], cps: float, concurrent: int) -> tuple[
        httpx.Client, str]:
    emulator = httpx.Client(base_url=stack_urls["emulator"], timeout=30)
    emulator.post("/emulator/numbers", json={n: {"answer": "human", "script": QUICK_HANGUP} for n in numbers}
                  ).raise_for_status()
    api = httpx.Client(base_url=stack_urls["dialer"], timeout=60, headers={"Authorization": f"Bearer {api_key}"})
    body = {"name": "faults-sentinel", "agent_profile": OUTBOUND_PROFILE, "max_attempts": 1,
            "calls_per_second": cps, "max_concurrent_calls": concurrent, "machine_detection": "none",
            "contacts": [{"to": n, "variables": {"name": "Sam"}} for n in numbers]}
    return api, api.post("/v1/campaigns", json=body).raise_for_status().json()["id"]


def _job_views(api: httpx.Client, campaign_id: str) -> list[dict]:
    ids, cursor = [], 0
    while cursor is not None:
        page = api.get("/v1/calls", params={"campaign_id": campaign_id, "limit": 500, "cursor": cursor}).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    return [api.get(f"/v1/calls/{j}").json() for j in ids]


def scenario_redis_failover(args: argparse.Namespace) -> Row:
    row = Row("redis-failover")
    n, contacts = args.calls, min(args.contacts, CAMPAIGN_CONTACTS)
    redis_dir = ROOT / "run" / "faults-redis-failover-sentinels"
    shutil.rmtree(redis_dir, ignore_errors=True)
    topology = SentinelSet(redis_dir).start()
    stack = watch = None
    try:
        env = topology.env()
        stack = start_stack("redis-failover", workers=1, capacity=n + contacts, dialer=True, extra_env={
            **env, "VOICEBOT_DIALER_ACCOUNT_CPS": str(args.cps), "VOICEBOT_DIALER_NUMBER_CPS": str(args.cps),
            "VOICEBOT_EMULATOR_RING_SECONDS": "0.5"})
        calls = Calls(stack)
        # the stack's own Redis is idle: the services (and we) go through the Sentinels
        calls.r = connect_sync(RedisTarget(env["VOICEBOT_REDIS_URL"], parse_sentinels(env["VOICEBOT_REDIS_SENTINELS"]),
                                           env["VOICEBOT_REDIS_SENTINEL_MASTER"], retry_s=30))
        watch = CreateWatch(stack.urls["emulator"])
        watch.start()
        sids = [calls.place() for _ in range(n)]
        row.set("calls", f"{n}+{contacts}")
        if not wait_for(lambda: all(calls.context_has_user_turn(s) for s in sids), timeout=40):
            row.note("not every call had a checkpointed caller turn at the fault")
        # the campaign starts now: the fault lands while it dials (contacts / cps seconds of creates)
        numbers = [f"+1628{5560000 + i}" for i in range(contacts)]
        api, campaign_id = _campaign(stack.urls, stack.api_key, numbers, args.cps, n + contacts)
        if not wait_for(lambda: watch.seen, timeout=30, step=0.05):
            row.note("no campaign create seen before the fault")
        at_kill = _job_views(api, campaign_id)
        states = collections.Counter(j["state"] for j in at_kill)
        if all(j["terminal"] for j in at_kill):
            row.note("campaign already over at the fault: not a mid-campaign failover")
        killed_at = time.time()
        old = topology.kill_primary()
        new = topology.wait_failover(old, timeout=60)
        switched_s = time.time() - killed_at
        row.note(f"kill -9 of the primary :{old} with {len(watch.seen)} campaign creates seen (jobs then: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(states.items())) + f"); :{new} promoted")
        reports = calls.finish_all(sids)
        conversation_figures(row, calls, reports)

        jobs = wait_for(lambda: (lambda vs: vs if all(v["terminal"] for v in vs) else None)(
            _job_views(api, campaign_id)), timeout=args.job_deadline, step=1.0) or _job_views(api, campaign_id)
        lost = [j for j in jobs if not j["terminal"]]
        row.set("jobs lost", len(lost))
        if lost:
            row.note("jobs lost: not terminal at the deadline: "
                     + ", ".join(f"{k} {v}" for k, v in collections.Counter(j["state"] for j in lost).items()))
        outcomes = collections.Counter(f"{j['state']}/{j.get('outcome') or '-'}" for j in jobs)
        row.note("jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        time.sleep(1.0)  # the last creates into the watch
        watch.stop.set()
        per_to = collections.Counter(to for _, to in watch.seen.values())
        row.set("dbl dials", sum(c - 1 for c in per_to.values() if c > 1))

        row.set("recover s", switched_s)
        after = [e["at"] for sid in sids for e in calls.events(sid) if e["at"] > killed_at] + \
            [e["at"] for j in jobs for e in j.get("events", []) if e["at"] > killed_at]
        row.note(f"recover s: kill -> the Sentinels name the replica and it takes writes; the first call or "
                 f"dial job event stamped after the kill: +{min(after) - killed_at:.2f} s" if after else
                 "recover s: kill -> promoted replica; no call or dial job event stamped after the kill")
        for column in ("max cps",):
            row.cells[column] = "-"
    finally:
        if watch is not None:
            watch.stop.set()
        if stack is not None:
            stop_stack(stack)
        topology.stop()
    return row


SCENARIOS: dict[str, Callable[[argparse.Namespace], Row]] = {"redis-failover": scenario_redis_failover}
