"""Schemathesis hooks for tests/dialer/test_openapi_contract.py (loaded by `st run` through
SCHEMATHESIS_HOOKS, with the tools venv's Python; import nothing from the project).

The document names two string formats of its own (`e164`, `iana-time-zone`); these generate values
of them. Valid-by-the-document requests ("positive" cases) are kept inside the rules a JSON Schema
cannot state, each written in the document's descriptions: a number that exists for its country
code, a zone the tz database has, a profile the deployment has, a window that ends after it starts,
a CSV upload that is a CSV, a transfer target override that is an E.164 number (SIP hosts are not
allow-listed in the test deployment; the run's key has the `admin` scope the override needs).
Negative cases are left as generated, except that every valid `wait_s` becomes at most 0.5 s (long
polls would otherwise eat the time budget; still valid, so still negative)."""

from __future__ import annotations

import os
import threading
from typing import Any

import schemathesis
from hypothesis import strategies as st
from redis_digest import digest

NUMBERS = ["+14155550123", "+1 (415) 555-0199", "+1.415.555.0142", "+447700900123", "+33 6 12 34 56 78",
           "+4915112345678", "+81312345678", "+61 2 9374 4000"]
ZONES = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Etc/GMT+5"]
PROFILES = ("sales",)  # in tests/dialer/agent-profiles.yaml and config/agent-profiles.yaml (`make up`)
CSV = b"to,name,meta_crm\n+14155550301,Ann,1\n+14155550302,Ben,2\n"
MAX_WAIT_S = 0.5
TRANSFER_TARGET = "+14155550100"

schemathesis.openapi.format("e164", st.sampled_from(NUMBERS))
schemathesis.openapi.format("iana-time-zone", st.sampled_from(ZONES))


def _possible(number: Any) -> Any:
    """A number the pattern allows need not exist (`+10`): valid cases use real-looking ones."""
    return number if number in NUMBERS else NUMBERS[len(str(number)) % len(NUMBERS)]


def _fix_numbers(body: dict[str, Any]) -> None:
    for field in ("to", "from"):
        if isinstance(body.get(field), str):
            body[field] = _possible(body[field])
    if isinstance(body.get("numbers"), list):
        body["numbers"] = [_possible(n) for n in body["numbers"]]
    for contact in body.get("contacts") or []:
        if isinstance(contact, dict):
            _fix_numbers(contact)


def _fix_window(window: dict[str, Any]) -> None:
    if isinstance(window.get("timezone"), str) and window["timezone"] not in ZONES:
        window["timezone"] = ZONES[len(window["timezone"]) % len(ZONES)]  # the pattern allows names tz lacks
    start, end = window.get("start"), window.get("end")
    if isinstance(start, str) and isinstance(end, str) and end <= start:  # 'HH:MM[:SS]' sort like the times
        window["start"], window["end"] = ("00:00", "23:59") if end == start else (end, start)


def _fix_options(body: dict[str, Any]) -> None:
    _fix_numbers(body)
    overrides = body.get("overrides")
    if isinstance(overrides, dict) and isinstance(overrides.get("transfer_number"), str):
        overrides["transfer_number"] = TRANSFER_TARGET
    if isinstance(body.get("calling_window"), dict):
        _fix_window(body["calling_window"])
    if body.get("agent_profile") not in (None, *PROFILES):
        body["agent_profile"] = PROFILES[len(str(body["agent_profile"])) % len(PROFILES)]


def _number(value: Any) -> float:
    """A query value as the API reads it (-1 when it is no number)."""
    try:
        return float(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        return -1


# Nothing stored on a 4xx: around each request that could write (POST, PUT, PATCH, DELETE), the digest of
# every key under the API's Redis prefix (the run's API has no Celery worker: only requests change
# Redis). Such requests run one at a time so that another's write cannot land in between.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDIS_URL, REDIS_PREFIX = os.environ.get("VOICEBOT_REDIS_URL", ""), os.environ.get("VOICEBOT_REDIS_PREFIX", "")
_one_write_at_a_time = threading.Lock()
_in_flight = threading.local()  # this thread's write: (case id, digest before) while it holds the lock


def _start_write(case: Any) -> None:
    if getattr(_in_flight, "write", None) is None and not _one_write_at_a_time.acquire(timeout=60):
        return  # a request that never answered kept the lock: this one goes unchecked
    _in_flight.write = (id(case), digest(REDIS_URL, REDIS_PREFIX))


@schemathesis.check
def nothing_stored_on_a_client_error(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx answer to a request that could write left every key under the API's prefix as it was."""
    write = getattr(_in_flight, "write", None)
    if write is None or write[0] != id(case):
        return
    try:
        if 400 <= response.status_code < 500:
            after = digest(REDIS_URL, REDIS_PREFIX)
            if after != write[1]:
                raise AssertionError(f"{case.method} {case.operation.path} answered {response.status_code} "
                                     "and changed what is stored in Redis")
    finally:
        _in_flight.write = None
        _one_write_at_a_time.release()


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    if REDIS_URL and case.method.upper() in WRITES:
        _start_write(case)
    if case.operation.path == "/v1/events" and "wait_s" not in (case.query or {}):
        case.query = {**(case.query or {}), "wait_s": MAX_WAIT_S}  # its default, 10 s, is too long here
    if 0 <= _number((case.query or {}).get("wait_s")) <= 30:  # a valid wait stays valid, only shorter
        case.query["wait_s"] = min(_number(case.query["wait_s"]), MAX_WAIT_S)
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    for name in ("to", "number"):  # listCalls, listCallRecords
        if isinstance(case.query, dict) and isinstance(case.query.get(name), str):
            case.query[name] = _possible(case.query[name])
    if isinstance(case.path_parameters, dict) and isinstance(case.path_parameters.get("number"), str):
        case.path_parameters["number"] = _possible(case.path_parameters["number"])
    body = case.body
    if case.operation.path == "/v1/campaigns/upload" and isinstance(body, dict):
        # Same type as generated: a changed type would make the case look schema-violating.
        body["contacts"] = CSV.decode() if isinstance(body.get("contacts"), str) else CSV
        if isinstance(body.get("campaign"), dict):
            _fix_options(body["campaign"])
    elif isinstance(body, dict):
        _fix_options(body)
