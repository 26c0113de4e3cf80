"""Where a call may be transferred: an E.164 number, or a SIP URI on an allow-listed host.

Checked where a target enters (the agent profile, dial-job overrides) and again right before the
transfer TwiML is built. A target with anything else in it (markup, spaces, another scheme) is
refused, not escaped: it never reaches a `<Dial>`.

The SIP allow-list is the setting `VOICEBOT_TRANSFER_SIP_HOSTS` (comma-separated host names, exact
and case-insensitive); empty, the default, refuses every SIP target.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

SIP_HOSTS_VARIABLE = "VOICEBOT_TRANSFER_SIP_HOSTS"

E164 = re.compile(r"\+[1-9]\d{1,14}")
# sip:[user@]host[:port][;param=value...]; user and parameters in a conservative character set
# (no markup, no quotes, no spaces), host a DNS name or IPv4 address.
SIP_URI = re.compile(
    r"sips?:(?:[A-Za-z0-9._+\-]{1,64}@)?(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?)"
    r"(?::\d{1,5})?(?:;[A-Za-z0-9_\-]{1,32}(?:=[A-Za-z0-9._\-]{1,64})?){0,8}",
    re.IGNORECASE,
)


class InvalidTransferTarget(ValueError):
    """A transfer target that is neither an E.164 number nor a SIP URI on an allowed host."""


def allowed_sip_hosts(value: str | Iterable[str] | None = None) -> frozenset[str]:
    """The SIP host allow-list: from `value` (a comma-separated string or host names), else from the
    environment variable `VOICEBOT_TRANSFER_SIP_HOSTS`."""
    if value is None:
        value = os.environ.get(SIP_HOSTS_VARIABLE, "")
    hosts = value.split(",") if isinstance(value, str) else value
    return frozenset(h.strip().lower() for h in hosts if h and h.strip())


def is_sip(target: str) -> bool:
    return target[:4].lower() == "sip:" or target[:5].lower() == "sips:"


def check_transfer_target(target: str, sip_hosts: Iterable[str]) -> str:
    """`target` if it is an E.164 number or a SIP URI whose host is in `sip_hosts`; raises
    InvalidTransferTarget otherwise. An empty target (no transfer configured) is returned as is."""
    if not isinstance(target, str):
        raise InvalidTransferTarget("transfer target must be a string")
    if target == "" or E164.fullmatch(target):
        return target
    if is_sip(target):
        match = SIP_URI.fullmatch(target)
        if match is None:
            raise InvalidTransferTarget(
                "transfer target is not a valid SIP URI: write sip:user@host[:port] (letters, digits, '.', "
                "'-', '_', '+' only)")
        host = match.group("host").lower()
        allowed = {h.lower() for h in sip_hosts}
        if host not in allowed:
            raise InvalidTransferTarget(
                f"SIP transfer target host {host!r} is not allowed: add it to {SIP_HOSTS_VARIABLE} "
                f"(allowed now: {', '.join(sorted(allowed)) or 'none, SIP targets are refused'})")
        return target
    raise InvalidTransferTarget(
        "transfer target must be an E.164 number (+<country code><number>, digits only, e.g. +15551234567) "
        f"or a sip: URI whose host is in {SIP_HOSTS_VARIABLE}")
