"""`voicebot` (or `python -m voicebot_cli`): talk to the dialer REST API.

  voicebot dial +15551234567 --agent sales --var name=Sam
  voicebot campaign create contacts.csv --cps 2 --max-concurrent 5
  voicebot calls tail
  voicebot numbers connect +15551234567 --profile support-cloud

The API address and key come from --url/--api-key or VOICEBOT_DIALER_URL/VOICEBOT_API_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from voicebot_cli import numbers
from voicebot_cli.client import ApiError, DialerClient


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"voicebot: {flag} takes NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def _window(spec: str | None) -> dict[str, Any] | None:
    """'America/New_York,09:00-20:00[,0-4]' -> calling window."""
    if not spec:
        return None
    parts = spec.split(",")
    try:
        start, end = parts[1].split("-")
    except (IndexError, ValueError):
        raise SystemExit("voicebot: --window takes TZ,HH:MM-HH:MM[,FIRST_DAY-LAST_DAY]") from None
    window: dict[str, Any] = {"timezone": parts[0], "start": start, "end": end}
    if len(parts) > 2:
        first, _, last = parts[2].partition("-")
        window["days"] = list(range(int(first), int(last or first) + 1))
    return window


# command-line option -> request field, sent only when given
_OPTION_FIELDS = (("agent", "agent_profile"), ("from_", "from"), ("max_attempts", "max_attempts"),
                  ("amd", "machine_detection"), ("webhook", "webhook_url"), ("at", "schedule_at"))


def _common_options(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {field: getattr(args, option) for option, field in _OPTION_FIELDS
                            if getattr(args, option)}
    if args.retry_delay is not None:
        body["retry"] = {"initial_delay_s": args.retry_delay}
    window = _window(args.window)
    if window:
        body["calling_window"] = window
    return body


def _print(value: Any, as_json: bool) -> None:
    if as_json or not isinstance(value, dict):
        print(json.dumps(value, indent=2))
        return
    for key, item in value.items():
        if key in ("events", "attempts") and item:
            print(f"{key}:")
            for entry in item:
                print(f"  {json.dumps(entry)}")
        else:
            print(f"{key}: {json.dumps(item) if isinstance(item, dict | list) else item}")


def _event_line(event: dict[str, Any]) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(event["at"]))
    skip = ("id", "at", "dial_job_id", "kind")
    details = " ".join(f"{k}={v}" for k, v in event.items() if k not in skip and v not in ("", None, {}))
    return f"{at} {event['dial_job_id']} {event['kind']:<22} {details}"


# How long one long poll waits on the server (an idle one comes back empty and is repeated), and the
# longest pause between retries while the API or its Redis is unreachable.
POLL_WAIT_S = float(os.environ.get("VOICEBOT_POLL_WAIT_S", "10"))
RETRY_MAX_S = 5.0


def _poll(client: DialerClient, after: str, deadline: float | None, **filters: str) -> dict[str, Any] | None:
    """The next page of events, waiting out transient failures (API restarting, Redis away) for as long
    as they last; None once `deadline` passed."""
    delay = 0.5
    while deadline is None or time.monotonic() < deadline:
        wait_s = POLL_WAIT_S if deadline is None else max(0.0, min(POLL_WAIT_S, deadline - time.monotonic()))
        try:
            return client.events(after, wait_s, **filters)
        except ApiError as exc:
            if not exc.transient:
                raise
            print(f"voicebot: {exc}; retrying in {delay:g} s", file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)
    return None


def _tail(client: DialerClient, job_id: str = "", campaign_id: str = "", until_terminal: bool = False,
          from_start: bool = False, max_seconds: float | None = None) -> int:
    after = "0-0" if from_start else ""
    deadline = time.monotonic() + max_seconds if max_seconds else None
    while (page := _poll(client, after, deadline, dial_job_id=job_id, campaign_id=campaign_id)) is not None:
        after = page["next"]
        for event in page["events"]:
            print(_event_line(event), flush=True)
            if until_terminal and event["kind"] in ("job.completed", "job.failed", "job.canceled"):
                return 0 if event["kind"] == "job.completed" else 1
    return 0


def cmd_dial(client: DialerClient, args: argparse.Namespace) -> int:
    body = {"to": args.to, **_common_options(args), "variables": _pairs(args.var, "--var"),
            "metadata": _pairs(args.meta, "--meta")}
    job = client.dial(body, args.idempotency_key)
    if args.json:
        _print(job, True)
    else:
        print(f"dial job {job['id']} {job['state']} to {job['to']} from {job['from']}", flush=True)
    if args.follow:
        return _tail(client, job_id=job["id"], until_terminal=True, from_start=True)
    return 0


def cmd_calls(client: DialerClient, args: argparse.Namespace) -> int:
    if args.calls_command == "get":
        _print(client.get_call(args.id), args.json)
    elif args.calls_command == "cancel":
        job = client.cancel_call(args.id)
        print(f"dial job {job['id']} {job['state']}")
    elif args.calls_command == "list":
        page = client.list_calls(state=args.state, campaign_id=args.campaign, limit=args.limit)
        if args.json:
            _print(page, True)
        for job in [] if args.json else page["items"]:
            print(f"{job['id']}  {job['state']:<12} {job['outcome']:<12} {job['to']}  attempt {job['attempt']}"
                  f"/{job['max_attempts']}")
    elif args.calls_command == "tail":
        try:
            return _tail(client, job_id=args.job or "", campaign_id=args.campaign or "",
                         from_start=args.from_start, max_seconds=args.seconds)
        except KeyboardInterrupt:
            return 0
    return 0


def _progress(client: DialerClient, campaign: dict[str, Any], quiet: bool) -> int:
    from tqdm import tqdm

    bar = tqdm(total=campaign["total"], unit="call", desc=campaign.get("name") or campaign["id"],
               disable=quiet, file=sys.stderr)
    try:
        while True:
            progress = client.campaign(campaign["id"])
            bar.n = progress["done"]
            bar.set_postfix({k: v for k, v in sorted(progress["states"].items())}, refresh=False)
            bar.refresh()
            if progress["done"] >= progress["total"] or progress["status"] == "canceled":
                break
            time.sleep(1.0)
    finally:
        bar.close()
    print(json.dumps({"id": progress["id"], "status": progress["status"], "states": progress["states"]}))
    return 0


def cmd_campaign(client: DialerClient, args: argparse.Namespace) -> int:
    if args.campaign_command == "create":
        path = Path(args.csv)
        settings = {**_common_options(args), "name": args.name or path.stem}
        if args.cps:
            settings["calls_per_second"] = args.cps
        if args.max_concurrent:
            settings["max_concurrent_calls"] = args.max_concurrent
        campaign = client.upload_campaign(path.read_bytes(), path.name, json.dumps(settings))
        print(f"campaign {campaign['id']} created with {campaign['total']} calls", file=sys.stderr, flush=True)
        if args.no_wait:
            _print(campaign, args.json)
            return 0
        return _progress(client, campaign, args.quiet)
    if args.campaign_command == "list":
        _print(client.list_campaigns(), True)
        return 0
    action = "" if args.campaign_command == "status" else args.campaign_command
    _print(client.campaign(args.id, action), args.json)
    return 0


def cmd_dnc(client: DialerClient, args: argparse.Namespace) -> int:
    if args.dnc_command == "add":
        _print(client.dnc_add(args.numbers), True)
    elif args.dnc_command == "remove":
        _print(client.dnc_remove(args.number), True)
    elif args.dnc_command == "check":
        _print(client.dnc_check(args.number), True)
    else:
        _print(client.dnc_list(), True)
    return 0


def _add_dial_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", help="agent profile")
    parser.add_argument("--from", dest="from_", help="caller ID (E.164); default: the pool")
    parser.add_argument("--max-attempts", type=int)
    parser.add_argument("--retry-delay", type=float, help="seconds before the first retry")
    parser.add_argument("--amd", choices=["none", "hangup", "voicemail"], help="answering machine policy")
    parser.add_argument("--webhook", help="URL receiving signed events")
    parser.add_argument("--at", help="do not dial before (ISO 8601 with offset)")
    parser.add_argument("--window", help="calling window TZ,HH:MM-HH:MM[,0-4] (0 = Monday)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("VOICEBOT_DIALER_URL", "http://127.0.0.1:8070"))
    parser.add_argument("--api-key", default=os.environ.get("VOICEBOT_API_KEY", ""))
    parser.add_argument("--json", action="store_true", help="print raw JSON")
    commands = parser.add_subparsers(dest="command", required=True)

    dial = commands.add_parser("dial", help="queue one outbound call")
    dial.add_argument("to")
    _add_dial_options(dial)
    dial.add_argument("--var", action="append", help="NAME=VALUE for the prompt (repeatable)")
    dial.add_argument("--meta", action="append", help="NAME=VALUE metadata (repeatable)")
    dial.add_argument("--idempotency-key")
    dial.add_argument("--follow", action="store_true", help="print the job's events until it ends")

    calls = commands.add_parser("calls", help="dial jobs").add_subparsers(dest="calls_command", required=True)
    calls.add_parser("get").add_argument("id")
    calls.add_parser("cancel").add_argument("id")
    listing = calls.add_parser("list")
    listing.add_argument("--state")
    listing.add_argument("--campaign")
    listing.add_argument("--limit", type=int, default=50)
    tail = calls.add_parser("tail", help="print dial events as they happen")
    tail.add_argument("--job")
    tail.add_argument("--campaign")
    tail.add_argument("--from-start", action="store_true", help="replay stored events first")
    tail.add_argument("--seconds", type=float, help="stop after this long")

    campaign = commands.add_parser("campaign", help="campaigns").add_subparsers(dest="campaign_command",
                                                                                required=True)
    create = campaign.add_parser("create", help="upload a CSV (a `to` column; others are variables)")
    create.add_argument("csv")
    create.add_argument("--name")
    create.add_argument("--cps", type=float, help="calls per second")
    create.add_argument("--max-concurrent", type=int)
    _add_dial_options(create)
    create.add_argument("--no-wait", action="store_true", help="do not show progress")
    create.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")
    campaign.add_parser("list")
    for action in ("status", "pause", "resume", "cancel"):
        campaign.add_parser(action).add_argument("id")

    dnc = commands.add_parser("dnc", help="do-not-call list").add_subparsers(dest="dnc_command", required=True)
    dnc.add_parser("add").add_argument("numbers", nargs="+")
    dnc.add_parser("remove").add_argument("number")
    dnc.add_parser("check").add_argument("number")
    dnc.add_parser("list")
    numbers.add_parser(commands)
    return parser


HANDLERS = {"dial": cmd_dial, "calls": cmd_calls, "campaign": cmd_campaign, "dnc": cmd_dnc}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "numbers":  # Twilio's REST API, not the dialer's: no API key
        return numbers.run(args)
    if not args.api_key:
        print("voicebot: set VOICEBOT_API_KEY or pass --api-key", file=sys.stderr)
        return 2
    client = DialerClient(args.url, args.api_key)
    try:
        return HANDLERS[args.command](client, args)
    except ApiError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
