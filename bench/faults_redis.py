"""Redis faults for the fault harness (bench/faults.py finds this module): the stack runs a redis-server of its
own (AOF on) so it can be restarted or made unreachable while calls and a campaign run.

  redis-restart  --calls live calls (three turns) and a campaign of --contacts numbers; once every call had a
                 caller turn checkpointed, kill -9 Redis and start it again on the same port from its AOF
  redis-outage   the same, then Redis frozen (SIGSTOP: connections hang, as behind a network partition) for
                 10 s; --calls new callers dial in during it and must hear the busy message; after it, --calls
                 more must be served and the campaign must finish

Columns as in faults.py; dropped also counts outage callers who heard neither bot nor busy message and
after-outage callers not served. recover s: Redis back -> the first call placed after it attached to a worker.
"""

from __future__ import annotations

import argparse
import collections
import signal
import time
from collections.abc import Callable

import httpx
from fault_harness import (
    BUSY_TEXT,
    OUTBOUND_PROFILE,
    QUICK_HANGUP,
    Calls,
    CreateWatch,
    Row,
    conversation_figures,
    start_stack,
    stop_stack,
    wait_for,
)

from voicebot_devstack.processes import Process, wait_for_redis
from voicebot_devstack.stack import Stack

OUTAGE_S = 10.0
CAMPAIGN_CONCURRENCY = 2
# a new caller during the outage: long enough to hear the busy message, then hang up
SHORT_CALL = {"name": "short-call", "voice": "formant", "steps": [{"pause": 4.0}, {"hangup": {}}]}
# a new caller once Redis is back: served when the bot greets it
GREETED_CALL = {"name": "greeted-call", "voice": "formant",
                "steps": [{"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}}, {"hangup": {}}]}


class RedisProcess:
    """The stack's own redis-server: kill and start again on its port, or freeze and thaw."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.notes: list[str] = []  # what was seen during the fault

    @property
    def proc(self) -> Process:
        return self.stack.processes["redis"]

    def restart(self) -> float:
        """kill -9 (what was acknowledged is in the AOF already: Redis writes it before replying), start again
        from the AOF; the seconds Redis was down."""
        old = self.proc
        killed_at = time.monotonic()
        old.stop(sig=signal.SIGKILL)
        again = Process(old.name, old.args, old.env, old.log_path).start()
        self.stack.processes["redis"] = wait_for_redis(self.stack.redis_url, again)
        return time.monotonic() - killed_at

    def freeze(self) -> None:
        self.proc.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.popen.send_signal(signal.SIGCONT)


class Campaign:
    """A campaign of emulator numbers that answer, wait 1 s and hang up; a watch on the creates."""

    def __init__(self, stack: Stack, contacts: int, cps: float) -> None:
        self.contacts = contacts
        self.watch = CreateWatch(stack.urls["emulator"])
        self.ids: list[str] = []
        if not contacts:
            return
        numbers = [f"+1628{5560000 + i}" for i in range(contacts)]
        httpx.post(f"{stack.urls['emulator']}/emulator/numbers", timeout=30,
                   json={n: {"answer": "human", "script": QUICK_HANGUP} for n in numbers}).raise_for_status()
        self.api = httpx.Client(base_url=stack.urls["dialer"], timeout=30,
                                headers={"Authorization": f"Bearer {stack.api_key}"})
        self.watch.start()
        body = {"name": "faults-redis", "agent_profile": OUTBOUND_PROFILE, "max_attempts": 1, "calls_per_second": cps,
                "max_concurrent_calls": CAMPAIGN_CONCURRENCY, "machine_detection": "none",
                "contacts": [{"to": n, "variables": {"name": "Sam"}} for n in numbers]}
        campaign_id = self.api.post("/v1/campaigns", json=body).raise_for_status().json()["id"]
        page = self.api.get("/v1/calls", params={"campaign_id": campaign_id, "limit": 500}).raise_for_status().json()
        self.ids = [item["id"] for item in page["items"]]

    def views(self) -> list[dict]:
        return [self.api.get(f"/v1/calls/{j}").raise_for_status().json() for j in self.ids]

    def figures(self, row: Row, deadline_s: float) -> None:
        """jobs lost (not terminal by the deadline) and double dials."""
        if not self.contacts:
            for column in ("jobs lost", "dbl dials"):
                row.na(column, "no campaign (--contacts 0)")
            return
        jobs = wait_for(lambda: (lambda vs: vs if all(v["terminal"] for v in vs) else None)(self.views()),
                        timeout=deadline_s, step=1.0) or self.views()
        lost = [j for j in jobs if not j["terminal"]]
        row.set("jobs lost", len(lost))
        time.sleep(1.0)  # the last creates into the watch
        self.watch.stop.set()
        per_to = collections.Counter(to for _, to in self.watch.seen.values())
        row.set("dbl dials", sum(c - 1 for c in per_to.values() if c > 1))
        outcomes = collections.Counter(f"{j['state']}/{j.get('outcome') or '-'}" for j in jobs)
        row.note(f"campaign of {self.contacts}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
                 + f"; {len(self.watch.seen)} creates at the emulator")

    def stop(self) -> None:
        self.watch.stop.set()


def heard(calls: Calls, sid: str, report: dict) -> str:
    """served (the bot's audio on an attached stream), busy (the busy message) or silent."""
    kinds = {e["kind"] for e in calls.events(sid)}
    if any(seg.get("source") != "say" for seg in report.get("heard", [])) and "stream-attached" in kinds:
        return "served"
    if any(BUSY_TEXT in (seg.get("text") or "") for seg in report.get("heard", [])) \
            or any(t.get("verb") == "Say" and BUSY_TEXT in (t.get("text") or "") for t in report.get("twiml", [])):
        return "busy"
    return "silent"


def attached_at(calls: Calls, sid: str) -> float | None:
    return next((e["at"] for e in calls.events(sid) if e["kind"] == "stream-attached"), None)


# a fault: (Redis, the calls, how many live) -> the callers who dialed in during it (counted after it)
Fault = Callable[[RedisProcess, Calls, int], list[str]]


def redis_fault(row: Row, args: argparse.Namespace, name: str, fault: Fault) -> None:
    """Live calls; a campaign started just before the fault; the fault; new callers once Redis is back; figures."""
    # one worker with room for the live calls, as many new ones and the campaign's; our own Redis
    stack = start_stack(name, workers=1, capacity=2 * args.calls + CAMPAIGN_CONCURRENCY, dialer=args.contacts > 0,
                        own_redis=True, extra_env={"VOICEBOT_EMULATOR_RING_SECONDS": "0.5"})
    campaign: Campaign | None = None
    try:
        calls = Calls(stack)
        live = [calls.place() for _ in range(args.calls)]
        row.set("calls", args.calls)
        if not wait_for(lambda: all(calls.context_has_user_turn(s) for s in live), timeout=40):
            row.note("not every live call had a checkpointed caller turn at the fault")
        campaign = Campaign(stack, args.contacts, args.cps)
        if args.contacts and not wait_for(lambda: campaign.watch.seen, timeout=20):
            row.note("the campaign had placed no call by the fault")
        redis = RedisProcess(stack)
        fault_at = time.time()
        during = fault(redis, calls, args.calls)
        back_at = time.time()
        if args.contacts:
            redis.notes.append(f"dialer API once Redis was back: {dialer_status(stack)}")
        for note in redis.notes:
            row.note(note)
        after = [calls.place(GREETED_CALL) for _ in range(args.calls)]  # new callers once Redis is back
        row.note(f"Redis out {back_at - fault_at:.1f} s; campaign creates before it "
                 f"{sum(1 for t, _ in list(campaign.watch.seen.values()) if t < fault_at)} of {args.contacts}")
        reports = calls.finish_all(live)
        conversation_figures(row, calls, reports)  # dropped etc. of the live calls
        dropped = int(row.cells["dropped"])
        if during:
            fared = collections.Counter(heard(calls, s, r) for s, r in calls.finish_all(during, timeout=60).items())
            dropped += fared["silent"]
            row.note(f"{len(during)} callers during the outage: {fared['busy']} heard the busy message, "
                     f"{fared['silent']} neither (dropped), {fared['served']} were served")
        after_reports = calls.finish_all(after)
        not_served = [s for s, r in after_reports.items() if heard(calls, s, r) != "served"
                      or r.get("status") != "completed"]
        row.set("dropped", dropped + len(not_served))
        row.note(f"after Redis was back: {args.calls - len(not_served)} of {args.calls} new callers served")
        firsts = [t for t in (attached_at(calls, s) for s in after) if t is not None]
        if firsts:
            row.set("recover s", min(firsts) - back_at)
        else:
            row.na("recover s", "no call placed after the fault attached to a worker")
        campaign.figures(row, deadline_s=args.job_deadline)
        dead = [p.name for p in stack.processes.values() if not p.alive()]
        row.note("every process alive at the end" if not dead else f"exited: {', '.join(dead)}")
        row.cells["max cps"] = "-"
    finally:
        if campaign is not None:
            campaign.stop()
        stop_stack(stack)


def restart(redis: RedisProcess, calls: Calls, live: int) -> list[str]:
    redis.restart()
    return []


def outage(redis: RedisProcess, calls: Calls, live: int) -> list[str]:
    """Freeze Redis for OUTAGE_S; as many new callers as live calls dial in a second into it."""
    redis.freeze()
    frozen_at = time.monotonic()
    try:
        time.sleep(1.0)
        during = [calls.place(SHORT_CALL) for _ in range(live)]
        if "dialer" in redis.stack.urls and "dialer-api" in redis.stack.processes:
            status = dialer_status(redis.stack)
            redis.notes.append(f"dialer API during the outage: {status}")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - frozen_at)))
    finally:
        redis.thaw()
    return during


def dialer_status(stack: Stack) -> str:
    """What the dialer's API answers a read with (503 while its store is out, never a 500 or a hang)."""
    began = time.monotonic()
    try:
        response = httpx.get(f"{stack.urls['dialer']}/v1/calls", params={"limit": 1}, timeout=30,
                             headers={"Authorization": f"Bearer {stack.api_key}"})
        return f"HTTP {response.status_code} in {time.monotonic() - began:.1f} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} after {time.monotonic() - began:.1f} s"


def scenario_redis_restart(args: argparse.Namespace) -> Row:
    row = Row("redis-restart")
    redis_fault(row, args, "redis-restart", restart)
    return row


def scenario_redis_outage(args: argparse.Namespace) -> Row:
    row = Row("redis-outage")
    redis_fault(row, args, "redis-outage", outage)
    return row


SCENARIOS: dict[str, Callable[[argparse.Namespace], Row]] = {
    "redis-restart": scenario_redis_restart,
    "redis-outage": scenario_redis_outage,
}
