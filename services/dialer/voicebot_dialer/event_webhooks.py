"""Signed event webhooks: POST JSON to the job's webhook_url with an HMAC-SHA256 signature.

Header `X-Voicebot-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>.<raw body>")>`;
the timestamp lets receivers refuse replays. `verify_signature` is what a receiver runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

SIGNATURE_HEADER = "X-Voicebot-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str | None, tolerance_s: int = 300) -> bool:
    if not header:
        return False
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


class WebhookRejected(Exception):
    """The receiver did not answer 2xx (or could not be reached): deliver again later."""


def deliver(url: str, event: dict[str, Any], secret: str, timeout_s: float = 5.0) -> int:
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body, int(time.time())),
               "User-Agent": "voicebot-dialer"}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise WebhookRejected(f"{type(exc).__name__} posting to webhook") from None
    if response.status_code // 100 != 2:
        raise WebhookRejected(f"webhook answered {response.status_code}")
    return response.status_code
