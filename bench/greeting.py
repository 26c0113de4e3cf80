#!/usr/bin/env python3
"""Greeting latency through the whole stack: stream start -> first greeting audio at the phone.

Starts a fresh stack (emulator -> gateway -> one bot-worker, separate processes), then places calls one
after another: the first is a fresh worker's first call, the others are warm. Per call it prints the
time from the phone's stream connecting (it then sends `connected` + `start`) and from the call's
first webhook to the first bot audio the phone plays. The caller listens to the greeting and hangs up.

    python bench/greeting.py --mode fake --calls 4
    python bench/greeting.py --mode local --calls 3
    python bench/greeting.py --mode fake --no-prepare     # VOICEBOT_WORKER_PREPARE_PHRASES=false
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/emulator", "packages/devstack", "services/bot-worker"):
    sys.path.insert(0, str(ROOT / package_dir))

from emulated_call import place  # noqa: E402

from voicebot_devstack.stack import Stack, StackConfig  # noqa: E402

MODES = {  # profiles file, called number (its profile's inbound greeting is measured)
    "fake": (ROOT / "tests" / "agent-profiles.yaml", "+15557000001"),
    "local": (ROOT / "config" / "agent-profiles.yaml", "+15550100000"),
}
LISTEN_THEN_HANG_UP = {"name": "greeting-only", "voice": "formant",
                       "steps": [{"wait_for_bot": {"silence_s": 0.8, "timeout_s": 60}}, {"hangup": {}}]}


def first_event(report: dict, name: str) -> float | None:
    return next((entry["t"] for entry in report["timeline"] if entry["event"] == name), None)



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="fake")
    parser.add_argument("--calls", type=int, default=4, help="calls in a row; the first is the fresh worker's")
    parser.add_argument("--no-prepare", action="store_true", help="run the worker without prepared phrases")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get(
        "VOICEBOT_MODELS_DIR", Path.home() / ".cache" / "voicebot" / "models")))
    args = parser.parse_args()
    profiles, number = MODES[args.mode]
    llm = args.models_dir / "qwen2.5-1.5b" / "model.gguf" if args.mode == "local" else None
    if llm is not None and not llm.exists():
        print(f"no local LLM at {llm}: run `make models`", file=sys.stderr)
        return 2
    env = {"VOICEBOT_MODELS_DIR": str(args.models_dir), "VOICEBOT_LOG_LEVEL": "WARNING",
           "VOICEBOT_WORKER_PREPARE_PHRASES": "false" if args.no_prepare else "true"}
    config = StackConfig(run_dir=ROOT / "run" / f"bench-greeting-{args.mode}", workers=1, profiles_path=profiles,
                         llm_model=llm, redis_prefix=f"bench-greeting-{int(time.time())}", extra_env=env)
    stack = Stack(config)
    started = time.monotonic()
    rows: list[tuple[float | None, float | None]] = []
    try:
        stack.start()
        ready_s = time.monotonic() - started
        for _ in range(args.calls):
            report = place(stack.urls["emulator"], number, LISTEN_THEN_HANG_UP, timeout_s=100)
            audio, stream, webhook = (first_event(report, e) for e in ("bot-audio-start", "stream-connected",
                                                                        "incoming"))
            rows.append((audio - stream if None not in (audio, stream) else None,
                         audio - webhook if None not in (audio, webhook) else None))
    finally:
        stack.stop()
    print(f"\ngreeting latency ({args.mode} providers, prepared phrases "
          f"{'off' if args.no_prepare else 'on'}, {os.cpu_count()} cores); stack ready in {ready_s:.1f}s")
    print(f"{'call':>6} {'stream start -> audio s':>24} {'webhook -> audio s':>19}")
    for index, (stream_s, webhook_s) in enumerate(rows):
        label = "fresh" if index == 0 else f"warm{index}"
        print(f"{label:>6} {_fmt(stream_s):>24} {_fmt(webhook_s):>19}")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
