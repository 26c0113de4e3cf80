"""`python -m voicebot_devstack up|down|status|demo`: the stack on this machine."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from voicebot_devstack.processes import ROOT
from voicebot_devstack.stack import Stack, StackConfig

RUN_DIR = ROOT / "run"


def _models_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_MODELS_DIR", Path.home() / ".cache" / "voicebot" / "models"))


def up(args: argparse.Namespace) -> int:
    if (RUN_DIR / "stack.json").exists() and status(args, quiet=True) == 0:
        print("the stack is already up (make down to stop it)")
        return 0
    llm = None if args.no_llm else _models_dir() / "qwen2.5-1.5b" / "model.gguf"
    if llm is not None and not llm.exists():
        print(f"no local LLM at {llm}: run `make models` first", file=sys.stderr)
        return 2
    stack = Stack(StackConfig(run_dir=RUN_DIR, workers=args.workers, llm_model=llm, dialer=not args.no_dialer,
                              fixed_ports=True)).start(detach=True)
    print(json.dumps(stack.urls, indent=2))
    print(f"logs in {RUN_DIR / 'logs'}; place a call with:\n"
          f"  bin/voicebot-emulator call --emulator {stack.urls['emulator']} --to +15550100000 --script demo\n"
          f"dial out with:\n  VOICEBOT_API_KEY={stack.api_key} bin/voicebot dial +15557000006 --agent sales "
          f"--var name=Sam   (with `make up` the dialer runs too)")
    return 0


def down(args: argparse.Namespace) -> int:
    state_file = RUN_DIR / "stack.json"
    if not state_file.exists():
        print("nothing to stop")
        return 0
    pids = json.loads(state_file.read_text())["pids"]
    for name, pid in sorted(pids.items(), key=lambda item: item[0] == "redis"):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        print(f"stopped {name}")
    state_file.unlink()
    return 0


def status(args: argparse.Namespace, quiet: bool = False) -> int:
    state_file = RUN_DIR / "stack.json"
    if not state_file.exists():
        return 1
    pids = json.loads(state_file.read_text())["pids"]
    alive = {}
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
            alive[name] = True
        except ProcessLookupError:
            alive[name] = False
    if not quiet:
        for name, ok in alive.items():
            print(f"{name:16} {'up' if ok else 'DOWN'}")
    return 0 if all(alive.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="voicebot-devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start the stack in the background")
    up_parser.add_argument("--workers", type=int, default=1)
    up_parser.add_argument("--no-dialer", action="store_true", help="without the dialer API and Celery worker")
    up_parser.add_argument("--no-llm", action="store_true", help="no local LLM server (fake profiles only)")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="which processes are up")
    sub.add_parser("demo", help="a whole simulated call on the local models")
    args = parser.parse_args()
    if args.command == "demo":
        from voicebot_devstack.demo import run_demo

        return run_demo(_models_dir())
    return {"up": up, "down": down, "status": status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
