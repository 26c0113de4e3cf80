#!/usr/bin/env python3
"""Voice-to-voice latency through the whole stack, and bot-worker cost per concurrent call.

Every call is a real emulated phone call: emulator -> gateway -> bot-worker -> back, all separate
processes. Per caller turn we measure end of caller speech -> first bot audio played at the phone.

    fake   fixed-latency fake providers (50 ms STT, 50 ms LLM first token, 50 ms TTS first audio):
           what remains is our own overhead (VAD + turn timeout, pipeline, relay, pacing)
    local  the offline stack (whisper tiny.en, Qwen2.5 1.5B on llama.cpp, hibari TTS)

With --concurrency 1,4,8 the fake run also reports, per level, the worker's CPU (share of one core)
and resident memory, which gives the sizing table in docs/deploy.md.

    python bench/call_latency.py --mode fake --concurrency 1,4,8
    python bench/call_latency.py --mode local --calls 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/emulator", "packages/devstack", "services/bot-worker"):
    sys.path.insert(0, str(ROOT / package_dir))

from emulated_call import place  # noqa: E402

from voicebot_devstack.stack import Stack, StackConfig  # noqa: E402
from voicebot_devstack.turns import percentile, turn_latencies  # noqa: E402

MODES = {
    # number -> profile in the profiles file, caller script
    "fake": (ROOT / "tests" / "agent-profiles.yaml", "+15557000001", "three-turns"),
    "local": (ROOT / "config" / "agent-profiles.yaml", "+15550100000", "demo"),
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")



def run_level(stack: Stack, number: str, script: str, concurrent: int, rounds: int) -> dict:
    worker = stack.processes["bot-worker-0"].pid
    cpu0, t0 = cpu_seconds(worker), time.monotonic()
    peak_rss = rss_mb(worker)
    latencies: list[float] = []
    unanswered = 0
    with concurrent_pool(concurrent) as pool:
        for _ in range(rounds):
            futures = [pool.submit(place, stack.urls["emulator"], number, script) for _ in range(concurrent)]
            while not all(f.done() for f in futures):
                peak_rss = max(peak_rss, rss_mb(worker))
                time.sleep(0.2)
            for future in futures:
                for turn in turn_latencies(future.result()):
                    if turn.latency_s is None:
                        unanswered += 1
                    else:
                        latencies.append(turn.latency_s)
    elapsed = time.monotonic() - t0
    return {"calls": concurrent, "turns": len(latencies), "unanswered": unanswered,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "cpu_core": (cpu_seconds(worker) - cpu0) / elapsed, "rss_mb": peak_rss}


def concurrent_pool(size: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="fake")
    parser.add_argument("--concurrency", default="1", help="comma-separated concurrent calls per level")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of calls per level")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get(
        "VOICEBOT_MODELS_DIR", Path.home() / ".cache" / "voicebot" / "models")))
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    profiles, number, script = MODES[args.mode]
    llm = args.models_dir / "qwen2.5-1.5b" / "model.gguf" if args.mode == "local" else None
    if llm is not None and not llm.exists():
        print(f"no local LLM at {llm}: run `make models`", file=sys.stderr)
        return 2
    config = StackConfig(run_dir=ROOT / "run" / f"bench-{args.mode}", workers=1, worker_capacity=max(levels),
                         profiles_path=profiles, llm_model=llm, redis_prefix=f"bench-{int(time.time())}",
                         extra_env={"VOICEBOT_MODELS_DIR": str(args.models_dir),
                                    "VOICEBOT_WORKER_PRELOAD_LOCAL_MODELS": "true", "VOICEBOT_LOG_LEVEL": "WARNING"})
    stack = Stack(config)
    try:
        stack.start()
        idle_rss = rss_mb(stack.processes["bot-worker-0"].pid)
        rows = [run_level(stack, number, script, level, args.rounds) for level in levels]
    finally:
        stack.stop()
    print(f"\nvoice-to-voice through the stack ({args.mode} providers, {os.cpu_count()} cores), "
          f"end of caller speech -> first bot audio at the phone")
    print(f"worker RSS idle: {idle_rss:.0f} MB")
    print(f"{'calls':>5} {'turns':>5} {'p50 s':>7} {'p95 s':>7} {'worker CPU':>11} {'RSS MB':>7} {'MB/call':>8}")
    for row in rows:
        per_call = (row["rss_mb"] - idle_rss) / row["calls"]
        print(f"{row['calls']:>5} {row['turns']:>5} {row['p50']:>7.2f} {row['p95']:>7.2f} "
              f"{row['cpu_core']:>10.0%} {row['rss_mb']:>7.0f} {per_call:>8.1f}"
              + (f"   ({row['unanswered']} turns unanswered)" if row["unanswered"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
