"""Signed event webhooks: POST JSON to the job's webhook_url with an HMAC-SHA256 signature.

Header `X-Voicebot-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>.<raw body>")>`;
the timestamp lets receivers refuse replays. `verify_signature` is what a receiver runs.
Every event has an `event_id`, the same on each attempt to deliver it: in the (signed) body and
repeated in the `Voicebot-Event-Id` header, so receivers can drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from voicebot_dialer.webhook_schedule import parse_retry_after

SIGNATURE_HEADER = "X-Voicebot-Signature"
EVENT_ID_HEADER = "Voicebot-Event-Id"
# 4xx answers that mean "later", not "never": request timeout, too many requests.
RETRYABLE_4XX = frozenset({408, 429})


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
    """The receiver did not answer 2xx (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Unreachable, 5xx, 408 or 429 are worth another attempt; any other 4xx would fail again."""
        return self.status is None or self.status not in range(400, 500) or self.status in RETRYABLE_4XX


def deliver(url: str, event: dict[str, Any], secret: str, timeout_s: float = 5.0) -> int:
    """POST `event` (it carries its `event_id`) once; raises WebhookRejected unless answered 2xx."""
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body, int(time.time())),
               EVENT_ID_HEADER: str(event["event_id"]), "User-Agent": "voicebot-dialer"}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise WebhookRejected(f"{type(exc).__name__} posting to webhook") from None
    if response.status_code // 100 != 2:
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response.status_code == 429 else None
        raise WebhookRejected(f"webhook answered {response.status_code}", response.status_code, retry_after)
    return response.status_code
