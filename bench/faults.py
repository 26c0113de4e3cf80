#!/usr/bin/env python3
"""Fault harness: real processes (voicebot_devstack.Stack: Redis, emulator, gateway, bot-workers, dialer
API + Celery worker), emulated phone calls and a running campaign, each fault injected while they run.

    python bench/faults.py [--scenario worker-kill|worker-freeze|no-free-worker|dialer-worker-kill|all]
                           [--calls 4] [--contacts 30] [--cps 2]

Scenarios (each starts its own stack, fake providers from tests/agent-profiles.yaml, so no models):
  worker-kill         --calls live calls on one bot-worker (capacity --calls), a second one as large
                      started beside it; kill -9 of the first once every call had its first turn answered
  worker-freeze       the same with SIGSTOP (SIGCONT once the calls moved, or after 15 s)
  no-free-worker      2 x --calls callers into one worker of capacity --calls / 2: who heard the busy message,
                      who was served, who got silence
  dialer-worker-kill  a campaign of --contacts emulator numbers (answer, 1 s, hang up) at --cps; kill -9 of the
                      Celery worker's process tree when a third were dialed, then a new worker

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
  recover s     worker faults: fault -> `reattached` event, worst call; dialer: kill -> the last of the dead
                worker's jobs placed (or ended) by the new worker
A figure that cannot be measured is `n/a`, with the reason in the notes below the table.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/simulation", "packages/emulator", "packages/devstack",
                    "services/bot-worker", "services/dialer"):
    sys.path.insert(0, str(ROOT / package_dir))

from voicebot_core.call_media import CallMedia, decode_wav  # noqa: E402
from voicebot_core.object_store import FilesystemObjectStore  # noqa: E402
from voicebot_core.redis_keys import RedisKeys  # noqa: E402
from voicebot_devstack.rates import max_in_any_window  # noqa: E402
from voicebot_devstack.stack import Stack, StackConfig  # noqa: E402
from voicebot_devstack.turns import turn_latencies  # noqa: E402
from voicebot_dialer.settings import DialerSettings  # noqa: E402
from voicebot_simulation.caller_script import utterances  # noqa: E402

PROFILES = ROOT / "tests" / "agent-profiles.yaml"
INBOUND = "+15557000001"  # fake-three-turns
SCRIPT = "three-turns"
OUTBOUND_PROFILE = "fake-outbound"
QUICK_HANGUP = {"name": "quick-hangup", "voice": "formant", "steps": [{"pause": 1.0}, {"hangup": {}}]}
BUSY_TEXT = "agents are busy"  # in the gateway's default busy message
COLUMNS = [("scenario", 18), ("calls", 5), ("dropped", 7), ("turns lost", 10), ("transcr lost", 12),
           ("rec s lost", 10), ("jobs lost", 9), ("dbl dials", 9), ("max cps", 9), ("recover s", 9)]


class Row:
    """One scenario's figures: a value, or n/a with the reason (in the notes)."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.cells: dict[str, str] = {}
        self.notes: list[str] = []

    def set(self, column: str, value: object) -> None:
        self.cells[column] = f"{value:.1f}" if isinstance(value, float) else str(value)

    def na(self, column: str, why: str) -> None:
        self.cells[column] = "n/a"
        self.notes.append(f"{column}: {why}")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def line(self) -> str:
        values = [self.scenario] + [self.cells.get(name, "-") for name, _ in COLUMNS[1:]]
        return " ".join(f"{v:<{w}}" if i == 0 else f"{v:>{w}}" for i, (v, (_, w)) in enumerate(zip(values, COLUMNS,
                                                                                                   strict=True)))


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def stop_stack(stack: Stack) -> None:
    """Stop the processes, then delete the scenario's keys from the (maybe shared) Redis."""
    stack.stop()
    if not stack.redis_url or "redis" in stack.processes:  # our own Redis: gone with its process
        return
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(stack.redis_url)
        keys = list(client.scan_iter(f"{stack.config.redis_prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])


def start_stack(name: str, workers: int, capacity: int, dialer: bool = False,
                extra_env: dict[str, str] | None = None) -> Stack:
    run_dir = ROOT / "run" / f"faults-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    config = StackConfig(run_dir=run_dir, workers=workers, worker_capacity=capacity, dialer=dialer,
                         profiles_path=PROFILES, redis_prefix=f"faults-{name}-{time.time_ns()}",
                         extra_env={"VOICEBOT_LOG_LEVEL": "WARNING", **(extra_env or {})})
    return Stack(config).start()


class Calls:
    """The emulator's control API and what Redis and the object store keep of each call."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.urls["emulator"], timeout=130)
        self.r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        self.keys = RedisKeys(stack.config.redis_prefix)
        self.media = CallMedia(FilesystemObjectStore(stack.storage_dir))

    def place(self, script: str | dict = SCRIPT, to: str = INBOUND) -> str:
        return self.http.post("/emulator/calls", json={"from": "+15550001111", "to": to, "script": script}
                              ).raise_for_status().json()["call_sid"]

    def record(self, sid: str) -> dict[str, str]:
        return self.r.hgetall(self.keys.call(sid))

    def events(self, sid: str) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.r.lrange(self.keys.call_events(sid), 0, -1)]

    def context_has_user_turn(self, sid: str) -> bool:
        return '"role": "user"' in (self.r.get(self.keys.call_context(sid)) or "")

    def finish_all(self, sids: list[str], timeout: float = 120) -> dict[str, dict]:
        def finish(sid: str) -> dict:
            self.http.get(f"/emulator/calls/{sid}/wait", params={"timeout": timeout, "status": "any"})
            return self.http.get(f"/emulator/calls/{sid}").json()

        with ThreadPoolExecutor(max(1, len(sids))) as pool:
            return dict(zip(sids, pool.map(finish, sids), strict=True))

    def transcript_user_texts(self, sid: str) -> list[str] | None:
        raw = wait_for(lambda: self.r.get(self.keys.call_transcript(sid)), timeout=5)
        if raw is None:
            return None
        return [t.get("text", "") for t in json.loads(raw) if t.get("role") == "user"]

    def recording_s(self, sid: str) -> float | None:
        wav = self.media.recording_wav(sid)
        if wav is None:
            return None
        audio = decode_wav(wav)
        return len(audio.pcm) / (2 * audio.num_channels * audio.sample_rate)


# ---------------------------------------------------------------- worker faults (kill, freeze)
def conversation_figures(row: Row, calls: Calls, reports: dict[str, dict]) -> None:
    """dropped, turns lost, transcript turns lost, recording seconds lost, over every call."""
    expected = utterances(SCRIPT)
    dropped = turns_lost = transcript_lost = 0
    rec_lost = rec_extra = 0.0
    worst = float("-inf")
    no_transcript: list[str] = []
    no_recording: list[str] = []
    for sid, report in reports.items():
        said = report.get("said", [])
        events = {e["kind"] for e in calls.events(sid)}
        if len(said) < len(expected) or report.get("error") or "failover-failed" in events \
                or report.get("status") != "completed":
            dropped += 1
        answered = sum(1 for t in turn_latencies(report) if t.latency_s is not None)
        turns_lost += len(expected) - answered
        texts = calls.transcript_user_texts(sid)
        if texts is None:
            no_transcript.append(sid)
        else:
            missing = collections.Counter(s.get("text", "") for s in said) - collections.Counter(texts)
            transcript_lost += sum(missing.values())
        record = wait_for(lambda sid=sid: (lambda rec: rec if rec.get("ended_at") else None)(calls.record(sid)),
                          timeout=10) or calls.record(sid)
        stored = calls.recording_s(sid)
        # the call record's attached_at is the last worker's: the first worker_attached event starts the call
        first = next((e["at"] for e in calls.events(sid) if e["kind"] == "worker_attached"), None)
        if stored is None or first is None or not record.get("ended_at"):
            no_recording.append(sid)
        else:
            gap = float(record["ended_at"]) - first - stored
            rec_lost += max(0.0, gap)
            rec_extra += max(0.0, -gap)
            worst = max(worst, gap)
    row.set("dropped", dropped)
    row.set("turns lost", turns_lost)
    if no_transcript:
        row.na("transcr lost", f"no transcript in Redis for {len(no_transcript)} of {len(reports)} calls")
    else:
        row.set("transcr lost", transcript_lost)
    if len(no_recording) == len(reports):
        row.na("rec s lost", "no recording or no attached_at/ended_at for any call")
    else:
        row.set("rec s lost", rec_lost)
        row.note(f"rec s lost: call = first worker_attached -> ended_at; worst call {worst:+.2f} s; stored beyond "
                 f"the call's length (overlapping audio) {rec_extra:.2f} s in all")
        if no_recording:
            row.note(f"rec s lost: {len(no_recording)} call(s) without recording/record times left out")


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

def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc), children first found by parent pid."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


class CreateWatch(threading.Thread):
    """Polls the emulator's call list every 0.1 s: when each call (create) was first seen, and its To."""

    def __init__(self, emulator_url: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=emulator_url, timeout=5)
        self.seen: dict[str, tuple[float, str]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                for call in self.http.get("/emulator/calls").json():
                    if call["direction"] != "inbound" and call["call_sid"] not in self.seen:
                        self.seen[call["call_sid"]] = (time.time(), call["to"])
            except httpx.HTTPError:
                pass


def scenario_dialer_worker_kill(args: argparse.Namespace) -> Row:
    row = Row("dialer-worker-kill")
    fields = DialerSettings.model_fields
    lease_s, placing_s = fields["dialer_dispatch_lease_s"].default, fields["dialer_placing_timeout_s"].default
    cps = args.cps
    stack = start_stack("dialer-worker-kill", workers=2, capacity=args.calls, dialer=True, extra_env={
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
                "max_concurrent_calls": 2 * args.calls, "machine_detection": "none",
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
        if not wait_for(lambda: len(watch.seen) >= max(1, args.contacts // 3), timeout=60):
            row.note(f"only {len(watch.seen)} creates seen before the kill")
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
        # the dead worker's jobs: dispatched again (lease expired / reconciled) after the kill
        recovered = []
        for job in jobs:
            events = job.get("events", [])
            retaken = [e for e in events if e["at"] > killed_at and e["kind"] in (
                "redispatched", "placement_not_found", "placement_lookup_failed")]
            if not retaken:
                continue
            done = [e["at"] for e in events if e["at"] > killed_at and (e["kind"] == "placed"
                                                                          or e["kind"].startswith("job."))]
            recovered.append(min(done) - killed_at if done else None)
        first_new = [e["granted_at"] for e in placed if e.get("granted_at", 0) > killed_at]
        if first_new:
            row.note(f"first placement by the new worker {min(first_new) - killed_at:.1f} s after the kill")
        if recovered and all(r is not None for r in recovered):
            row.set("recover s", max(recovered))
            row.note(f"recover s: {len(recovered)} job(s) of the dead worker dispatched again and placed/ended")
        elif recovered:
            row.na("recover s", f"{sum(r is None for r in recovered)} of the dead worker's {len(recovered)} "
                                "job(s) never placed or ended")
        else:
            row.na("recover s", "no job was dispatched again after the kill (none held by the dead worker, or "
                                "its leases had not run out by the deadline)")
        for column in ("dropped", "turns lost", "transcr lost", "rec s lost"):
            row.cells[column] = "-"
    finally:
        watch.stop.set()
        stop_stack(stack)
    return row


SCENARIOS: dict[str, Callable[[argparse.Namespace], Row]] = {
    "worker-kill": scenario_worker_kill,
    "worker-freeze": scenario_worker_freeze,
    "no-free-worker": scenario_no_free_worker,
    "dialer-worker-kill": scenario_dialer_worker_kill,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--calls", type=int, default=4, help="concurrent calls (and worker capacity)")
    parser.add_argument("--contacts", type=int, default=30, help="campaign contacts (dialer-worker-kill)")
    parser.add_argument("--cps", type=float, default=2.0, help="account, number and campaign CPS")
    parser.add_argument("--job-deadline", type=float, default=90.0,
                        help="seconds after the dialer kill by which every job should be terminal")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    rows = []
    for name in names:
        started = time.monotonic()
        print(f"--- {name}", file=sys.stderr, flush=True)
        try:
            row = SCENARIOS[name](args)
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
