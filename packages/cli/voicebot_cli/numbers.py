"""`voicebot numbers list|connect`: your Twilio numbers' voice webhooks, set through the twilio SDK
(IncomingPhoneNumbers), so nobody pastes URLs into the console.

  voicebot numbers list
  voicebot numbers connect +15551234567 [--profile support-cloud] [--public-url https://abc.example]

`connect` points the number's voice URL at the gateway's /twilio/voice (with `?agent_profile=NAME`
when --profile is given: the gateway answers that number with that profile; Twilio signs the URL
with its query) and its status callback at /twilio/status, both POST.

Where the settings come from, first found wins: the options; the environment (VOICEBOT_TWILIO_ACCOUNT_SID,
VOICEBOT_TWILIO_AUTH_TOKEN, VOICEBOT_TWILIO_API_BASE_URL, VOICEBOT_GATEWAY_PUBLIC_BASE_URL,
VOICEBOT_AGENT_PROFILE; the tutorials' TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN too); `.env` in the
current folder or the repository root; then `run/stack.json` written by `make up` (without
credentials that is the emulator and its throwaway token, so this works offline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[3]
STACK_STATE = ROOT / "run" / "stack.json"
TWILIO_API = "https://api.twilio.com"
ALIASES = {"VOICEBOT_TWILIO_ACCOUNT_SID": "TWILIO_ACCOUNT_SID", "VOICEBOT_TWILIO_AUTH_TOKEN": "TWILIO_AUTH_TOKEN"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::1")


class NumbersError(Exception):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class Target:
    account_sid: str
    auth_token: str
    api_base_url: str
    public_base_url: str
    profiles_path: Path
    default_profile: str = ""
    source: str = ""

    @property
    def is_twilio(self) -> bool:
        return urlsplit(self.api_base_url).hostname not in LOCAL_HOSTS


def _env_values(env_file: Path | None) -> tuple[dict[str, str], str]:
    """VOICEBOT_* (and alias) values: environment over .env."""
    from dotenv import dotenv_values

    candidates = [env_file] if env_file else [Path.cwd() / ".env", ROOT / ".env"]
    path = next((p for p in candidates if p.is_file()), None)
    from_file = {k: v for k, v in (dotenv_values(path) if path else {}).items() if v}
    merged = {**from_file, **{k: v for k, v in os.environ.items() if v}}
    for name, alias in ALIASES.items():
        if not merged.get(name) and merged.get(alias):
            merged[name] = merged[alias]
    return merged, f"{path} + environment" if path else "environment"


def resolve(args: argparse.Namespace) -> Target:
    values, source = _env_values(getattr(args, "env_file", None))
    state: dict[str, Any] = {}
    if STACK_STATE.is_file():
        state = json.loads(STACK_STATE.read_text()).get("twilio", {})
    sid, token = values.get("VOICEBOT_TWILIO_ACCOUNT_SID", ""), values.get("VOICEBOT_TWILIO_AUTH_TOKEN", "")
    api = values.get("VOICEBOT_TWILIO_API_BASE_URL", "")
    if sid and token:
        if not api or api == "emulator":
            api = state.get("api_base_url", "") if api == "emulator" else TWILIO_API
    elif state.get("auth_token"):
        sid, token, api = state["account_sid"], state["auth_token"], state["api_base_url"]
        source = f"{STACK_STATE} (the emulator of `make up`)"
    else:
        raise NumbersError("no Twilio credentials: set VOICEBOT_TWILIO_ACCOUNT_SID and VOICEBOT_TWILIO_AUTH_TOKEN "
                           "in .env (see .env.example), or run `make up` without them to use the emulator")
    if not api:
        raise NumbersError("VOICEBOT_TWILIO_API_BASE_URL=emulator, but no `make up` stack is running")
    public = (getattr(args, "public_url", None) or values.get("VOICEBOT_GATEWAY_PUBLIC_BASE_URL", "")
              or state.get("public_base_url", ""))
    profiles = values.get("VOICEBOT_AGENT_PROFILES_PATH", "") or state.get("profiles_path", "") \
        or str(ROOT / "config" / "agent-profiles.yaml")
    profiles_path = Path(profiles) if Path(profiles).is_absolute() else ROOT / profiles
    return Target(sid, token, api.rstrip("/"), public.rstrip("/"), profiles_path,
                  values.get("VOICEBOT_AGENT_PROFILE", ""), source)


def _client(target: Target):
    from voicebot_core.twilio_rest import make_client

    return make_client(target.account_sid, target.auth_token, base_url=target.api_base_url)


def _twilio_call(what: str, fn, *args: Any, **kwargs: Any) -> Any:
    from twilio.base.exceptions import TwilioException, TwilioRestException

    try:
        return fn(*args, **kwargs)
    except TwilioRestException as exc:
        hint = {20003: " (wrong account SID or auth token, or the account lives in another region: "
                       "VOICEBOT_TWILIO_API_BASE_URL=https://api.<edge>.<region>.twilio.com)",
                20404: " (not a number of this account)"}.get(exc.code, "")
        raise NumbersError(f"{what}: Twilio error {exc.code} (HTTP {exc.status}): {exc.msg}{hint}") from None
    except TwilioException as exc:
        detail = " ".join(str(a) for a in exc.args)
        hint = (" (wrong account SID or auth token, or the account lives in another region: "
                "VOICEBOT_TWILIO_API_BASE_URL=https://api.<edge>.<region>.twilio.com)") if "20003" in detail else ""
        raise NumbersError(f"{what}: {detail}{hint}") from None
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise NumbersError(f"{what}: cannot reach the Twilio REST API: {exc}") from None


def _profile_of(voice_url: str | None) -> str:
    from urllib.parse import parse_qs

    if not voice_url:
        return ""
    return parse_qs(urlsplit(voice_url).query).get("agent_profile", [""])[0]


def _row(number: Any) -> dict[str, Any]:
    return {"phone_number": number.phone_number, "sid": number.sid, "friendly_name": number.friendly_name,
            "voice_url": number.voice_url, "voice_method": number.voice_method,
            "status_callback": number.status_callback, "status_callback_method": number.status_callback_method,
            "voice_application_sid": number.voice_application_sid, "trunk_sid": number.trunk_sid,
            "agent_profile": _profile_of(number.voice_url)}


def cmd_list(target: Target, args: argparse.Namespace) -> int:
    numbers = _twilio_call("listing your numbers", _client(target).incoming_phone_numbers.list,
                           **({"phone_number": args.number} if args.number else {}))
    rows = [_row(n) for n in numbers]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{len(rows)} number(s) of account {target.account_sid[:6]}…{target.account_sid[-4:]} at "
          f"{target.api_base_url}:")
    for row in rows:
        profile = f"  agent profile {row['agent_profile']}" if row["agent_profile"] else ""
        print(f"  {row['phone_number']:<16} {row['sid']}{profile}\n"
              f"    voice   {row['voice_method']} {row['voice_url'] or '(none)'}\n"
              f"    status  {row['status_callback_method']} {row['status_callback'] or '(none)'}")
        if row["voice_application_sid"] or row["trunk_sid"]:
            print(f"    NOTE: a TwiML app ({row['voice_application_sid']}) or SIP trunk ({row['trunk_sid']}) handles "
                  "this number's calls, not its voice URL")
    return 0


def webhook_urls(public_base_url: str, profile: str = "") -> tuple[str, str]:
    voice = f"{public_base_url}/twilio/voice"
    if profile:
        voice += "?" + urlencode({"agent_profile": profile})
    return voice, f"{public_base_url}/twilio/status"


def _check_public_url(target: Target) -> list[str]:
    if not target.public_base_url:
        raise NumbersError("no public URL for the gateway: start an https tunnel to it (port 8080), then set "
                           "VOICEBOT_GATEWAY_PUBLIC_BASE_URL in .env (and restart `make up`) or pass --public-url")
    parts = urlsplit(target.public_base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NumbersError(f"--public-url {target.public_base_url} is not an http(s) URL")
    warnings = []
    if target.is_twilio and parts.hostname in LOCAL_HOSTS:
        raise NumbersError(f"public URL {target.public_base_url} is this machine: Twilio cannot reach it; "
                           "use your tunnel's https URL")
    if parts.scheme != "https":
        warnings.append(f"{target.public_base_url} is not https: Twilio opens Media Streams only on wss://, so "
                        "calls would be answered and then drop" + ("" if target.is_twilio else
                                                                      " (fine for the emulator)"))
    return warnings


def cmd_connect(target: Target, args: argparse.Namespace) -> int:
    profile = args.profile if args.profile is not None else target.default_profile
    if profile:
        from voicebot_core.profiles import AgentProfiles

        names = AgentProfiles.load(target.profiles_path).names
        if profile not in names:
            raise NumbersError(f"no agent profile {profile!r} in {target.profiles_path}; known: {', '.join(names)}")
    for warning in _check_public_url(target):
        print(f"WARNING: {warning}", file=sys.stderr)
    client = _client(target)
    found = _twilio_call(f"looking up {args.number}", client.incoming_phone_numbers.list,
                         phone_number=args.number)
    number = next((n for n in found if n.phone_number == args.number), None)
    if number is None:
        raise NumbersError(f"{args.number} is not a number of account {target.account_sid[:6]}…: buy one in the "
                           "Twilio console (Phone Numbers > Buy a number, with Voice) and check "
                           "`voicebot numbers list`; numbers are E.164, e.g. +15551234567")
    voice_url, status_url = webhook_urls(target.public_base_url, profile)
    updated = _twilio_call(f"updating {args.number}", client.incoming_phone_numbers(number.sid).update,
                           voice_url=voice_url, voice_method="POST", status_callback=status_url,
                           status_callback_method="POST")
    row = _row(updated)
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        print(f"{row['phone_number']} ({row['sid']}) now answers through the gateway"
              + (f" with agent profile {profile}" if profile else " (agent profile: the number mapping / default)")
              + f":\n  voice   {row['voice_method']} {row['voice_url']}\n"
                f"  status  {row['status_callback_method']} {row['status_callback']}")
        if row["voice_application_sid"] or row["trunk_sid"]:
            print("WARNING: a TwiML app or SIP trunk is attached to this number and takes its calls instead; "
                  "detach it in the console", file=sys.stderr)
    return 0


def add_parser(commands: Any) -> None:
    """`voicebot numbers ...` on the CLI's subcommands."""
    numbers = commands.add_parser("numbers", help="your Twilio numbers' voice webhooks (no dialer API key needed)",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    numbers.add_argument("--env-file", type=Path, help="VOICEBOT_* settings (default: ./.env, then the repo's .env)")
    sub = numbers.add_subparsers(dest="numbers_command", required=True)
    listing = sub.add_parser("list", help="the account's numbers and where their calls go")
    listing.add_argument("number", nargs="?", help="only numbers matching this (partial numbers, * for a digit)")
    connect = sub.add_parser("connect", help="point a number's voice URL and status callback at the gateway")
    connect.add_argument("number", help="E.164, e.g. +15551234567")
    connect.add_argument("--profile", help="agent profile answering this number (default: VOICEBOT_AGENT_PROFILE, "
                                           "else the profiles file's number mapping)")
    connect.add_argument("--public-url", help="the gateway's public https base URL (default: "
                                              "VOICEBOT_GATEWAY_PUBLIC_BASE_URL, else what `make up` uses)")


def run(args: argparse.Namespace) -> int:
    try:
        target = resolve(args)
        handler = cmd_list if args.numbers_command == "list" else cmd_connect
        return handler(target, args)
    except NumbersError as exc:
        print(f"voicebot numbers: {exc}", file=sys.stderr)
        return 1
