"""The fault harness's parts: a stack per scenario, the emulator's calls and what Redis and the object
store keep of them, a row of figures, a watch on the creates reaching the emulator. Scenarios: faults.py
and the faults_*.py modules beside it."""

from __future__ import annotations

import collections
import contextlib
import json
import shutil
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
from voicebot_devstack.stack import Stack, StackConfig  # noqa: E402
from voicebot_devstack.turns import turn_latencies  # noqa: E402
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
        self.counts: dict[str, int] = {}  # further counts a scenario's test asserts (recovery paths taken)

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
                extra_env: dict[str, str] | None = None, gateways: int = 1, own_redis: bool = False) -> Stack:
    """A scenario's stack in run/faults-<name>, on its own key prefix (`own_redis`: its own Redis, with
    AOF, that the scenario may restart or freeze; `gateways` > 1: behind the load balancer)."""
    run_dir = ROOT / "run" / f"faults-{name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    config = StackConfig(run_dir=run_dir, workers=workers, worker_capacity=capacity, dialer=dialer,
                         profiles_path=PROFILES, redis_prefix=f"faults-{name}-{time.time_ns()}", gateways=gateways,
                         own_redis=own_redis, extra_env={"VOICEBOT_LOG_LEVEL": "WARNING", **(extra_env or {})})
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
