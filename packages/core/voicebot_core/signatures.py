"""X-Twilio-Signature checks with the twilio SDK's RequestValidator.

The URL must be the one Twilio requested: behind an ingress we rebuild it from a configured
public base URL, else from the request, taking X-Forwarded-Proto/Host into account only when the
request came from a trusted proxy (any client can send those headers).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureError(PermissionError):
    """The request is not signed by our Twilio account; the message says why."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def parse_proxies(spec: str) -> tuple[Network, ...]:
    """Comma-separated IP addresses and CIDR networks (`10.0.0.0/8, 192.168.1.7`); empty: none.

    ValueError naming an entry that is neither. Networks are strict (no host bits set), as
    uvicorn's `forwarded_allow_ips` reads them, so both trust the same peers.
    """
    networks = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(f"not an IP address or CIDR network: {item!r} ({exc})") from None
    return tuple(networks)


def is_trusted_proxy(peer_host: str | None, proxies: str) -> bool:
    """Whether a connection from `peer_host` (the socket's peer address) is one of `proxies`."""
    networks = parse_proxies(proxies)
    if not peer_host or not networks:
        return False
    try:
        address = ipaddress.ip_address(peer_host)
    except ValueError:  # not an IP peer (a Unix socket): never a trusted proxy
        return False
    return any(address in network for network in networks)


def public_url(
    *,
    request_url: str,
    headers: Mapping[str, str],
    public_base_url: str | None,
    websocket: bool = False,
    trust_forwarded: bool = False,
) -> str:
    """The URL as Twilio saw it. `headers` must be case-insensitive (Starlette's are) or keyed in lower case.

    A configured `public_base_url` always wins. Without one, the scheme and host come from the
    request (`request_url` and the Host header), or from X-Forwarded-Proto/Host when
    `trust_forwarded` (the request came from a trusted proxy); otherwise those headers are ignored.
    """
    parts = urlsplit(request_url)
    if public_base_url:
        base = urlsplit(public_base_url)
        scheme, netloc = base.scheme, base.netloc
        path = base.path.rstrip("/") + parts.path
    elif not trust_forwarded:
        scheme = parts.scheme
        netloc = headers.get("host") or parts.netloc
        path = parts.path
    else:
        scheme = headers.get("x-forwarded-proto", parts.scheme).split(",")[0].strip()
        netloc = headers.get("x-forwarded-host", headers.get("host", parts.netloc)).split(",")[0].strip()
        path = parts.path
    if websocket:
        scheme = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    else:
        scheme = {"wss": "https", "ws": "http"}.get(scheme, scheme)
    return urlunsplit((scheme, netloc, path, parts.query, ""))


class SignatureChecker:
    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def check(self, url: str, params: Mapping[str, str], signature: str | None) -> None:
        if not signature:
            raise SignatureError(f"missing {SIGNATURE_HEADER} header")
        if not self._validator.validate(url, dict(params), signature):
            raise SignatureError(f"{SIGNATURE_HEADER} does not match {url}")

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """Signature Twilio would send (the emulator signs with this)."""
        return self._validator.compute_signature(url, dict(params))
