#!/usr/bin/env python3
"""Fault harness: real processes (voicebot_devstack.Stack: Redis, emulator, gateway, bot-workers, dialer
API + Celery worker), emulated phone calls and a running campaign, each fault injected while they run.

    python bench/faults.py [--scenario NAME|all] [--calls 4] [--contacts 30] [--cps 2]

Scenarios (each starts its own stack, fake providers from tests/agent-profiles.yaml, so no models):
  worker-kill         --calls live calls on one bot-worker (capacity --calls), a second one as large
                      started beside it; kill -9 of the first once every call had its first turn answered
  worker-freeze       the same with SIGSTOP (SIGCONT once the calls moved, or after 15 s)
  no-free-worker      2 x --calls callers into one worker of capacity --calls / 2: who heard the busy message,
                      who was served, who got silence
  dialer-worker-kill  a campaign of --contacts emulator numbers (answer, 1 s, hang up) at --cps; kill -9 of the
                      Celery worker's process tree when a third were dialed, then a new worker
  twilio-faults       the same campaign (2 attempts per job) while the emulator answers its first creates
                      slowly (past and within the REST client's timeout), 5xx with and without the call made,
                      and 429 with Retry-After (TWILIO_FAULTS); placing timeout 6 s to keep the run short
  the bench/faults_*.py modules' scenarios: Redis restarted or unreachable, Sentinel failover, a gateway
  stopped or killed behind the load balancer (each module's docstring)

Each run's Redis keys (its own prefix) are deleted at the end; logs and call data stay in run/faults-<scenario>.

Columns:
  calls         calls placed in the scenario (inbound callers, or campaign contacts)
  dropped       calls that did not get through their caller script (ended early, error, failover failed);
                no-free-worker: callers who heard neither the bot nor the busy message
  turns lost    caller turns never answered by bot audio, plus turns never said because the call ended
  transcr lost  caller turns said but missing from the call's transcript (Redis), matched by text
  rec s lost    call seconds (first worker_attached event -> the record's ended_at) not in the stored
                recording (CallMedia.recording_wav), summed over calls; audio stored beyond a call's length
                (overlap, e.g. a frozen worker's segment uploaded after SIGCONT) is in the notes
  jobs lost     dial jobs not terminal at the deadline (kill + --job-deadline seconds)
  dbl dials     creates at the emulator beyond one per contact (max_attempts 1: each extra is a double dial)
  max cps       most creates in any 1 s window (granted_at of `placed` events; emulator sightings at 0.1 s
                resolution in the notes) / the configured CPS
  recover s     worker faults: fault -> `reattached` event, worst call; dialer: kill -> the last of the jobs
                the dead worker held queued placed (or ended) by another worker; a job it was placing (its
                create may have reached Twilio) is looked up in Twilio instead, reported in the notes
A figure that cannot be measured is `n/a`, with the reason in the notes below the table.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis
from fault_harness import (
    BUSY_TEXT,
    COLUMNS,
    OUTBOUND_PROFILE,
    QUICK_HANGUP,
    Calls,
    CreateWatch,
    Row,
    conversation_figures,
    descendants,
    start_stack,
    stop_stack,
    wait_for,
)

from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.rates import max_in_any_window
from voicebot_devstack.turns import turn_latencies
from voicebot_dialer.settings import DialerSettings


# ---------------------------------------------------------------- worker faults (kill, freeze)
def worker_fault(row: Row, n: int, freeze: bool) -> None:
    stack = start_stack("worker-freeze" if freeze else "worker-kill", workers=1, capacity=n)
    try:
        calls = Calls(stack)
        sids = [calls.place() for _ in range(n)]
        row.set("calls", n)
        if not wait_for(lambda: all(calls.record(s).get("worker_id") for s in sids), timeout=30):
            row.note("not every call attached to the first worker within 30 s")
        victim = "bot-worker-0"
        on_victim = [s for s in sids if calls.record(s).get("worker_id") == victim]
        stack.add_worker(1, capacity=n)  # the survivor, as large: every call fits on it
        if not wait_for(lambda: all(calls.context_has_user_turn(s) for s in on_victim), timeout=40):
            row.note("not every call had a checkpointed caller turn at the fault")
        proc = stack.processes[victim].popen
        fault_at = time.time()
        proc.send_signal(signal.SIGSTOP if freeze else signal.SIGKILL)
        if freeze:
            moved = wait_for(lambda: all(any(e["kind"] == "reattached" for e in calls.events(s)) for s in on_victim),
                             timeout=15)
            proc.send_signal(signal.SIGCONT)
            row.note(f"SIGCONT {time.time() - fault_at:.1f} s after SIGSTOP" + ("" if moved else
                                                                                 " (not every call had moved)"))
        reports = calls.finish_all(sids)
        conversation_figures(row, calls, reports)
        delays = []
        for sid in on_victim:
            again = [e for e in calls.events(sid) if e["kind"] == "reattached" and e["at"] >= fault_at]
            if again:
                delays.append(again[0]["at"] - fault_at)
        if delays:
            row.set("recover s", max(delays))
            row.note(f"recover s: {len(delays)} of {len(on_victim)} calls on {victim} re-attached, "
                     f"fastest {min(delays):.2f} s")
        else:
            row.na("recover s", f"no `reattached` event after the fault on any of {len(on_victim)} calls")
        for column in ("jobs lost", "dbl dials", "max cps"):
            row.cells[column] = "-"
    finally:
        stop_stack(stack)


def scenario_worker_kill(args: argparse.Namespace) -> Row:
    row = Row("worker-kill")
    worker_fault(row, args.calls, freeze=False)
    return row


def scenario_worker_freeze(args: argparse.Namespace) -> Row:
    row = Row("worker-freeze")
    worker_fault(row, args.calls, freeze=True)
    return row


# ---------------------------------------------------------------- no free worker
def scenario_no_free_worker(args: argparse.Namespace) -> Row:
    row = Row("no-free-worker")
    capacity = max(1, args.calls // 2)
    callers = 2 * args.calls
    stack = start_stack("no-free-worker", workers=1, capacity=capacity)
    try:
        calls = Calls(stack)
        sids = [calls.place() for _ in range(callers)]
        row.set("calls", callers)
        reports = calls.finish_all(sids)
        served = busy = silent = 0
        for sid, report in reports.items():
            kinds = {e["kind"] for e in calls.events(sid)}
            heard_busy = any(BUSY_TEXT in (seg.get("text") or "") for seg in report.get("heard", [])) \
                or any(t.get("verb") == "Say" and BUSY_TEXT in (t.get("text") or "") for t in report.get("twiml", []))
            heard_bot = any(seg.get("source") != "say" for seg in report.get("heard", []))
            if heard_bot and "stream-attached" in kinds:
                served += 1
            elif heard_busy:
                busy += 1
            else:
                silent += 1
        row.set("dropped", silent)
        row.note(f"{callers} callers into 1 worker of capacity {capacity}: {served} served, {busy} heard the busy "
                 f"message, {silent} got neither (silence)")
        unanswered = sum(1 for sid, report in reports.items()
                         for t in turn_latencies(report) if t.latency_s is None and report.get("heard"))
        row.set("turns lost", unanswered)
        row.note("turns lost: caller turns (of served and busy callers) with no audio after them")
        for column in ("transcr lost", "rec s lost", "jobs lost", "dbl dials", "max cps", "recover s"):
            row.cells[column] = "-"
    finally:
        stop_stack(stack)
    return row


# ---------------------------------------------------------------- dialer worker kill

def scenario_dialer_worker_kill(args: argparse.Namespace) -> Row:
    row = Row("dialer-worker-kill")
    fields = DialerSettings.model_fields
    lease_s, placing_s = fields["dialer_dispatch_lease_s"].default, fields["dialer_placing_timeout_s"].default
    cps = args.cps
    # room for every call the campaign's cap allows: its pace, not bot-worker capacity, holds jobs back, so the
    # Celery worker holds placement tasks (waiting for rate tokens) when it is killed
    stack = start_stack("dialer-worker-kill", workers=2, capacity=2 * args.calls, dialer=True, extra_env={
        "VOICEBOT_DIALER_ACCOUNT_CPS": str(cps), "VOICEBOT_DIALER_NUMBER_CPS": str(cps),
        "VOICEBOT_EMULATOR_RING_SECONDS": "0.5"})
    watch = CreateWatch(stack.urls["emulator"])
    try:
        numbers = [f"+1628{5550000 + i}" for i in range(args.contacts)]
        emulator = httpx.Client(base_url=stack.urls["emulator"], timeout=30)
        emulator.post("/emulator/numbers", json={n: {"answer": "human", "script": QUICK_HANGUP} for n in numbers}
                      ).raise_for_status()
        api = httpx.Client(base_url=stack.urls["dialer"], timeout=60,
                           headers={"Authorization": f"Bearer {stack.api_key}"})
        watch.start()
        body = {"name": "faults", "agent_profile": OUTBOUND_PROFILE, "max_attempts": 1, "calls_per_second": cps,
                "max_concurrent_calls": 4 * args.calls, "machine_detection": "none",
                "contacts": [{"to": n, "variables": {"name": "Sam"}} for n in numbers]}
        campaign_id = api.post("/v1/campaigns", json=body).raise_for_status().json()["id"]
        row.set("calls", args.contacts)

        def job_ids() -> list[str]:
            ids, cursor = [], 0
            while cursor is not None:
                page = api.get("/v1/calls", params={"campaign_id": campaign_id, "limit": 500, "cursor": cursor}).json()
                ids += [item["id"] for item in page["items"]]
                cursor = page["next_cursor"]
            return ids

        ids = job_ids()
        holders = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        held_key = RedisKeys(stack.config.redis_prefix).dial_holders()
        if not wait_for(lambda: len(watch.seen) >= max(1, args.contacts // 3) and holders.hlen(held_key), timeout=60,
                        step=0.02):
            row.note(f"{len(watch.seen)} creates seen, {holders.hlen(held_key)} jobs held by the worker at the kill")
        worker = stack.processes["dialer-worker"]
        tree = descendants(worker.pid)
        states_at_kill = collections.Counter(api.get(f"/v1/calls/{j}").json()["state"] for j in ids)
        killed_at = time.time()
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.popen.wait(10)
        row.note(f"killed the Celery worker tree ({len(tree)} processes) at {len(watch.seen)} creates; jobs then: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(states_at_kill.items())))
        dialer_env = {**stack.common_env(), "VOICEBOT_DIALER_PORT": stack.urls["dialer"].rsplit(":", 1)[1],
                      "VOICEBOT_DIALER_API_KEYS": stack.api_key, "VOICEBOT_GATEWAY_PUBLIC_BASE_URL": stack.public_url}
        restarted = stack.dialer_worker_process(dialer_env).start()
        stack.processes[restarted.name] = restarted
        restarted.wait_healthy(60)
        row.note(f"new worker healthy {time.time() - killed_at:.1f} s after the kill (dispatch lease "
                 f"{lease_s:g} s, placing timeout {placing_s:g} s: the dialer's defaults)")

        def views() -> list[dict]:
            return [api.get(f"/v1/calls/{j}").json() for j in ids]

        final = wait_for(lambda: (lambda vs: vs if all(v["terminal"] for v in vs) else None)(views()),
                         timeout=args.job_deadline, step=1.0)
        jobs = final or views()
        lost = [j for j in jobs if not j["terminal"]]
        row.set("jobs lost", len(lost))
        if lost:
            row.note(f"jobs lost: not terminal {args.job_deadline:.0f} s after the kill: "
                     + ", ".join(f"{k} {v}" for k, v in collections.Counter(j["state"] for j in lost).items()))
        time.sleep(1.0)  # the last creates into the watch
        watch.stop.set()
        per_to = collections.Counter(to for _, to in watch.seen.values())
        row.set("dbl dials", sum(c - 1 for c in per_to.values() if c > 1))
        placed = [e for j in jobs for e in j.get("events", []) if e["kind"] == "placed"]
        grants = [e["granted_at"] for e in placed if e.get("granted_at")]
        seen_window = max_in_any_window([t for t, _ in watch.seen.values()])
        if grants:
            row.set("max cps", f"{max_in_any_window(grants)}/{cps:g}")
        else:
            row.na("max cps", "no `placed` event with granted_at")
        row.note(f"max cps: {len(grants)} placed events; emulator creates (seen every 0.1 s): {len(watch.seen)}, "
                 f"most in 1 s {seen_window}")
        outcomes = collections.Counter(f"{j['state']}/{j.get('outcome') or '-'}" for j in jobs)
        row.note("jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        # the dead worker's jobs: dispatched again (it held their tasks), or looked up in Twilio (it was
        # placing them: their create may have reached Twilio)
        redispatched: list[float | None] = []
        looked_up: list[tuple[float | None, str]] = []
        for job in jobs:
            after = [e for e in job.get("events", []) if e["at"] > killed_at]
            kinds = {e["kind"] for e in after}
            done = [e["at"] - killed_at for e in after if e["kind"] in ("placed", "placement_reconciled")
                    or e["kind"].startswith("job.")]
            if "redispatched" in kinds:
                redispatched.append(min(done) if done else None)
            elif kinds & {"placement_not_found", "placement_reconciled", "placement_lookup_failed"}:
                looked_up.append((min(done) if done else None, f"{job['state']}/{job.get('outcome') or '-'}"))
        first_new = [e["granted_at"] for e in placed if e.get("granted_at", 0) > killed_at]
        if first_new:
            row.note(f"first placement by the new worker {min(first_new) - killed_at:.1f} s after the kill")
        if redispatched and all(r is not None for r in redispatched):
            row.set("recover s", max(r for r in redispatched if r is not None))
            row.note(f"recover s: {len(redispatched)} queued job(s) of the dead worker dispatched again and "
                     "placed (or ended), the last this long after the kill")
        elif redispatched:
            row.na("recover s", f"{sum(r is None for r in redispatched)} of the dead worker's {len(redispatched)} "
                                "queued job(s) never placed or ended")
        else:
            row.na("recover s", "no queued job of the dead worker was dispatched again (it held none at the kill)")
        for took, end_state in looked_up:
            row.note("a job the dead worker was placing (its create may have reached Twilio) was looked up in "
                     f"Twilio after its death and ended {end_state} "
                     + (f"{took:.1f} s after the kill" if took is not None else "(not by the deadline)")
                     + f"; bound: liveness + one placing timeout ({placing_s:g} s) for a second look-up")
        for column in ("dropped", "turns lost", "transcr lost", "rec s lost"):
            row.cells[column] = "-"
    finally:
        watch.stop.set()
        stop_stack(stack)
    return row


# ---------------------------------------------------------------- slow or failing Twilio REST
# The emulator's answers to the first creates of the campaign (its create fault plan), in order.
TWILIO_FAULTS = [
    ("slow past the client's timeout, call made", {"status": 201, "delay_s": 8.0}),
    ("503 after the call was made", {"status": 503, "make_call": True}),
    ("500, no call made", {"status": 500, "make_call": False}),
    ("429, Retry-After 2 s", {"status": 429, "make_call": False, "retry_after": "2"}),
    ("slow within the client's timeout", {"status": 201, "delay_s": 2.0}),
    ("502 after the call was made", {"status": 502, "make_call": True}),
]
TWILIO_FAULTS_PLACING_S = 6.0  # the REST client gives up after 5 s; look-ups 6 s after placing began


def scenario_twilio_faults(args: argparse.Namespace) -> Row:
    row = Row("twilio-faults")
    cps = args.cps
    stack = start_stack("twilio-faults", workers=2, capacity=args.calls, dialer=True, extra_env={
        "VOICEBOT_DIALER_ACCOUNT_CPS": str(cps), "VOICEBOT_DIALER_NUMBER_CPS": str(cps),
        "VOICEBOT_EMULATOR_RING_SECONDS": "0.5", "VOICEBOT_DIALER_PLACING_TIMEOUT_S": str(TWILIO_FAULTS_PLACING_S)})
    try:
        numbers = [f"+1628{5560000 + i}" for i in range(args.contacts)]
        emulator = httpx.Client(base_url=stack.urls["emulator"], timeout=30)
        emulator.post("/emulator/numbers", json={n: {"answer": "human", "script": QUICK_HANGUP} for n in numbers}
                      ).raise_for_status()
        emulator.post("/emulator/create-faults", json=[fault for _, fault in TWILIO_FAULTS]).raise_for_status()
        api = httpx.Client(base_url=stack.urls["dialer"], timeout=60,
                           headers={"Authorization": f"Bearer {stack.api_key}"})
        body = {"name": "twilio-faults", "agent_profile": OUTBOUND_PROFILE, "max_attempts": 2,
                "retry": {"initial_delay_s": 1, "multiplier": 1, "max_delay_s": 1}, "calls_per_second": cps,
                "max_concurrent_calls": 2 * args.calls, "machine_detection": "none",
                "contacts": [{"to": n, "variables": {"name": "Sam"}} for n in numbers]}
        campaign_id = api.post("/v1/campaigns", json=body).raise_for_status().json()["id"]
        row.set("calls", args.contacts)
        started = time.time()

        def views() -> list[dict]:
            page = api.get("/v1/calls", params={"campaign_id": campaign_id, "limit": 500}).json()
            return [api.get(f"/v1/calls/{item['id']}").json() for item in page["items"]]

        jobs = wait_for(lambda: (lambda vs: vs if vs and all(v["terminal"] for v in vs) else None)(views()),
                        timeout=args.job_deadline, step=1.0) or views()
        lost = [j for j in jobs if not j["terminal"]]
        row.set("jobs lost", len(lost))
        if lost:
            row.note(f"jobs lost: not terminal {args.job_deadline:.0f} s after the campaign started: "
                     + ", ".join(f"{k} {v}" for k, v in collections.Counter(j["state"] for j in lost).items()))
        unplanned = emulator.get("/emulator/create-faults").json()
        if unplanned:
            row.note(f"{len(unplanned)} planned fault(s) never reached: fewer creates than faults")
        made = collections.Counter(c["to"] for c in emulator.get("/emulator/calls").json()
                                   if c["direction"] != "inbound")
        # every contact answers and completes: a second call made to one is a double dial
        row.set("dbl dials", sum(count - 1 for count in made.values() if count > 1))
        grants = [e["granted_at"] for j in jobs for e in j.get("events", [])
                  if e["kind"] == "placed" and e.get("granted_at")]
        if grants:
            row.set("max cps", f"{max_in_any_window(grants)}/{cps:g}")
        else:
            row.na("max cps", "no `placed` event with granted_at")
        kinds = collections.Counter(e["kind"] for j in jobs for e in j.get("events", []))
        row.counts.update({kind: kinds[kind] for kind in (
            "placement_uncertain", "placement_reconciled", "placement_lost", "placement_rate_limited",
            "late_call_hung_up")})
        row.counts["contacts never called"] = sum(1 for n in numbers if not made[n])
        row.note("faults planned for the first creates: " + "; ".join(name for name, _ in TWILIO_FAULTS))
        row.note("recovery events: " + ", ".join(f"{k} {v}" for k, v in row.counts.items()))
        outcomes = collections.Counter(f"{j['state']}/{j.get('outcome') or '-'}" for j in jobs)
        row.note("jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        ends = [e["at"] for j in jobs for e in j.get("events", []) if e["kind"].startswith("job.")]
        if ends and not lost:
            row.set("recover s", max(ends) - started)
            row.note(f"recover s: campaign start -> its last job ended (placing timeout "
                     f"{TWILIO_FAULTS_PLACING_S:g} s here, REST client timeout 5 s)")
        for column in ("dropped", "turns lost", "transcr lost", "rec s lost"):
            row.cells[column] = "-"
    finally:
        stop_stack(stack)
    return row


SCENARIOS: dict[str, Callable[[argparse.Namespace], Row]] = {
    "worker-kill": scenario_worker_kill,
    "worker-freeze": scenario_worker_freeze,
    "no-free-worker": scenario_no_free_worker,
    "dialer-worker-kill": scenario_dialer_worker_kill,
    "twilio-faults": scenario_twilio_faults,
}


def all_scenarios() -> dict[str, Callable[[argparse.Namespace], Row]]:
    """These, then each bench/faults_*.py module's SCENARIOS (Redis, gateways), in file order."""
    found = dict(SCENARIOS)
    for path in sorted(Path(__file__).parent.glob("faults_*.py")):
        found.update(importlib.import_module(path.stem).SCENARIOS)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenarios = all_scenarios()
    parser.add_argument("--scenario", choices=[*scenarios, "all"], default="all")
    parser.add_argument("--calls", type=int, default=4, help="concurrent calls (and worker capacity)")
    parser.add_argument("--contacts", type=int, default=30, help="campaign contacts (dialer-worker-kill)")
    parser.add_argument("--cps", type=float, default=2.0, help="account, number and campaign CPS")
    parser.add_argument("--job-deadline", type=float, default=90.0,
                        help="seconds after the dialer kill by which every job should be terminal")
    args = parser.parse_args()
    names = list(scenarios) if args.scenario == "all" else [args.scenario]
    rows = []
    for name in names:
        started = time.monotonic()
        print(f"--- {name}", file=sys.stderr, flush=True)
        try:
            row = scenarios[name](args)
        except Exception as exc:  # the row still prints
            row = Row(name)
            for column, _ in COLUMNS[1:]:
                row.cells.setdefault(column, "n/a")
            row.note(f"scenario failed: {type(exc).__name__}: {exc}"[:400])
        row.note(f"took {time.monotonic() - started:.0f} s")
        rows.append(row)
    print(f"\nfault harness ({os.cpu_count()} cores): {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(" ".join(f"{name:<{w}}" if i == 0 else f"{name:>{w}}" for i, (name, w) in enumerate(COLUMNS)))
    for row in rows:
        print(row.line())
    print()
    for row in rows:
        for note in row.notes:
            print(f"  {row.scenario}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
