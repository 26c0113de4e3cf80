"""`python -m voicebot_devstack up|down|status|demo`: the stack on this machine.

`up` and `demo` read the environment and an optional `.env` (environment.py, `.env.example`): with
your Twilio credentials and a tunnel's URL, `up` answers real calls to your number."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from voicebot_devstack import environment
from voicebot_devstack.pages import page_links
from voicebot_devstack.processes import ROOT
from voicebot_devstack.stack import Stack, StackConfig

RUN_DIR = ROOT / "run"


def _models_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_MODELS_DIR", Path.home() / ".cache" / "voicebot" / "models"))


def up(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if (run_dir / "stack.json").exists() and status(args, quiet=True) == 0:
        print("the stack is already up (make down to stop it)")
        return 0
    try:
        config = environment.load(args.env_file)
    except environment.ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return 2
    llm = None if args.no_llm else _models_dir() / "qwen2.5-1.5b" / "model.gguf"
    if llm is not None and not llm.exists():
        print(f"no local LLM at {llm}: run `make models` first", file=sys.stderr)
        return 2
    stack_config = environment.stack_config(config, StackConfig(
        run_dir=run_dir, workers=args.workers, llm_model=llm, dialer=not args.no_dialer,
        fixed_ports=not args.free_ports))
    stack = Stack(stack_config).start(detach=True)
    print("\n".join(environment.banner(config, stack.urls["gateway"], local_llm=llm is not None)))
    print("\nservices:")
    for name, url in stack.urls.items():
        print(f"  {name:16} {url}")
    print("pages:\n" + "\n".join(page_links(stack)))
    print(f"logs in {run_dir / 'logs'}")
    through = " (through your public URL)" if config.public_base_url else ""
    print(f"place a simulated call{through} with:\n"
          f"  bin/voicebot-emulator call --emulator {stack.urls['emulator']} --to +15550100000 --script demo")
    if config.real_twilio:
        print("answer real calls: `bin/voicebot numbers list`, `bin/voicebot numbers connect +1YOURNUMBER "
              "[--profile NAME]`, then call that number from your phone")
        print(f"dial out (a real, billed call; trial accounts reach verified numbers only):\n"
              f"  VOICEBOT_API_KEY={stack.api_key} bin/voicebot dial +1YOURPHONE --from +1YOURNUMBER --agent NAME")
    else:
        print(f"dial out with:\n  VOICEBOT_API_KEY={stack.api_key} bin/voicebot dial +15557000006 --agent sales "
              f"--var name=Sam   (with `make up` the dialer runs too)")
    return 0


def down(args: argparse.Namespace) -> int:
    state_file = args.run_dir / "stack.json"
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
    state_file = args.run_dir / "stack.json"
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
    up_parser.add_argument("--free-ports", action="store_true",
                           help="free ports instead of 8060/8080/8070/8090+/9808 (a second stack beside the first)")
    down_parser = sub.add_parser("down", help="stop what `up` started")
    status_parser = sub.add_parser("status", help="which processes are up")
    for command in (up_parser, down_parser, status_parser):
        command.add_argument("--run-dir", type=Path, default=RUN_DIR,
                             help="logs, state and pids of the stack (default: run/ in the repository)")
    demo_parser = sub.add_parser("demo", help="a whole simulated call on the local models")
    demo_parser.add_argument("--stay-up", action=argparse.BooleanOptionalAction, default=None,
                             help="after the call, keep the stack up for the softphone and the console until "
                                  "Ctrl-C (default: when run from a terminal)")
    for command in (up_parser, demo_parser):
        command.add_argument("--env-file", type=Path, default=environment.ENV_FILE,
                             help="VOICEBOT_* settings (default: .env at the repository root, if present)")
    args = parser.parse_args()
    if args.command == "demo":
        from voicebot_devstack.demo import run_demo

        try:
            config = environment.load(args.env_file).for_simulated_calls()
        except environment.ConfigError as exc:
            print(f"configuration: {exc}", file=sys.stderr)
            return 2
        stay_up = sys.stdin.isatty() if args.stay_up is None else args.stay_up
        return run_demo(_models_dir(), config, stay_up=stay_up)
    return {"up": up, "down": down, "status": status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
