"""X-Twilio-Signature checks with the twilio SDK's RequestValidator.

The URL must be the one Twilio requested: behind an ingress we rebuild it from a configured
public base URL or from X-Forwarded-Proto/Host.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureError(PermissionError):
    """The request is not signed by our Twilio account; the message says why."""


def public_url(
    *,
    request_url: str,
    headers: Mapping[str, str],
    public_base_url: str | None,
    websocket: bool = False,
) -> str:
    """The URL as Twilio saw it. `headers` must be case-insensitive (Starlette's are)."""
    parts = urlsplit(request_url)
    if public_base_url:
        base = urlsplit(public_base_url)
        scheme, netloc = base.scheme, base.netloc
        path = base.path.rstrip("/") + parts.path
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
