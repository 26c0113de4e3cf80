"""`python -m voicebot_emulator [serve]` runs the emulator; `... call` places an inbound test call."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from voicebot_core.logs import setup_logging
    from voicebot_emulator.app import create_app
    from voicebot_emulator.settings import EmulatorSettings

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["emulator_host"] = args.host
    if args.port:
        overrides["emulator_port"] = args.port
    settings = EmulatorSettings(**overrides)
    setup_logging("emulator", settings.log_level, settings.log_json, settings.mask_phone_numbers)
    warn_unless_loopback(settings.emulator_host, settings.emulator_port)
    uvicorn.run(create_app(settings), host=settings.emulator_host, port=settings.emulator_port, log_config=None)
    return 0


def warn_unless_loopback(host: str, port: int) -> bool:
    """Log a warning when the emulator listens beyond this machine; True when it did."""
    from voicebot_emulator.settings import is_loopback

    if is_loopback(host):
        return False
    log.warning("emulator listening on %s:%s, not a loopback address: its control API (/emulator/...) has no "
                "authentication, so anyone who reaches it can place calls and read call reports and audio. "
                "It is for development only: bind it to 127.0.0.1 (VOICEBOT_EMULATOR_HOST, --host) unless "
                "the network around it is yours alone (a container whose port is published on loopback).",
                host or "every interface", port)
    return True


def _inline_script(path: Path) -> dict[str, Any]:
    """A script file sent as a mapping; `play` paths made absolute so they still resolve."""
    import yaml

    data = yaml.safe_load(path.read_text())
    for step in data.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("play"), str):
            step["play"] = str((path.parent / step["play"]).resolve())
    return data


def _print_events(events: list[dict[str, Any]]) -> None:
    for entry in events:
        detail = " ".join(f"{k}={v}" for k, v in entry.get("detail", {}).items())
        print(f"{entry['t']:8.3f}s  {entry['event']:<24} {detail}".rstrip(), flush=True)


def _call(args: argparse.Namespace) -> int:
    base = args.emulator.rstrip("/")
    script: str | dict[str, Any] = args.script
    if args.script.endswith((".yaml", ".yml")):
        script = _inline_script(Path(args.script))
    body: dict[str, Any] = {"from": args.from_, "to": args.to, "script": script}
    if args.voice_url:
        body["voice_url"] = args.voice_url
    with httpx.Client(timeout=30) as client:
        response = client.post(f"{base}/emulator/calls", json=body)
        if response.status_code >= 400:
            print(f"emulator refused the call: {response.status_code} {response.text}", file=sys.stderr)
            return 2
        sid = response.json()["call_sid"]
        print(f"call {sid} placed", flush=True)
        printed, deadline = 0, time.monotonic() + args.timeout
        while True:
            report = client.get(f"{base}/emulator/calls/{sid}").json()
            _print_events(report["timeline"][printed:])
            printed = len(report["timeline"])
            if report["status"] in ("completed", "busy", "failed", "no-answer", "canceled") and report["heard_wav"]:
                break
            if time.monotonic() > deadline:
                print(f"gave up waiting after {args.timeout}s (status {report['status']})", file=sys.stderr)
                return 1
            time.sleep(0.5)
    summary = {k: report[k] for k in ("status", "duration", "said", "heard", "twiml", "error", "heard_wav")}
    print(json.dumps(summary, indent=2))
    print(f"heard audio: {report['heard_wav']}")
    return 0 if report["status"] == "completed" and not report["error"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot_emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the emulator server (default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    call = commands.add_parser("call", help="place an inbound call and follow it")
    call.add_argument("--emulator", default="http://127.0.0.1:8060")
    call.add_argument("--from", dest="from_", default="+15550001111")
    call.add_argument("--to", default="+15550002222")
    call.add_argument("--script", default="three-turns", help="builtin name or YAML file")
    call.add_argument("--voice-url", help="override the emulator's voice webhook for this call")
    call.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    if args.command == "call":
        return _call(args)
    if args.command is None:
        args.host = args.port = None
    return _serve(args)
