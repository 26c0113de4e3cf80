"""Short-lived, single-use per-call tickets: a bot-worker accepts a stream only from the gateway.

ticket = "<expires>.<nonce>.<hex hmac-sha256(secret, call_sid|worker_id|expires|nonce)>"

The gateway mints a fresh ticket (a new random nonce) for every connection attempt. The worker
checks it during the WebSocket upgrade, before accepting: signature, expiry, call SID and worker,
then consumes the nonce in Redis (`SET NX`, expiring with the ticket), so a ticket opens one
stream at most; a replay is refused like a forgery.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from voicebot_core.redis_keys import RedisKeys

# Sent as a header, never in the URL: URLs end up in access logs.
TICKET_HEADER = "X-Voicebot-Ticket"

_NONCE = re.compile(r"[0-9a-f]{32}")


class TicketError(PermissionError):
    pass


@dataclass(frozen=True)
class Ticket:
    """A ticket whose signature, expiry, call and worker have been checked."""

    expires: int  # unix seconds
    nonce: str

    def remaining_s(self) -> float:
        return self.expires - time.time()


def _mac(secret: str, call_sid: str, worker_id: str, expires: int, nonce: str) -> str:
    msg = f"{call_sid}|{worker_id}|{expires}|{nonce}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def issue_ticket(secret: str, call_sid: str, worker_id: str, ttl_s: int = 30) -> str:
    """A new ticket for one connection attempt of one call to one worker."""
    expires = int(time.time()) + ttl_s
    nonce = secrets.token_hex(16)
    return f"{expires}.{nonce}.{_mac(secret, call_sid, worker_id, expires, nonce)}"


def verify_ticket(secret: str, ticket: str | None, call_sid: str, worker_id: str) -> Ticket:
    """Signature, expiry, call and worker; does not consume it (see `consume_ticket`)."""
    if not ticket:
        raise TicketError("missing stream ticket")
    parts = ticket.split(".")
    if len(parts) != 3 or not _NONCE.fullmatch(parts[1]):
        raise TicketError("malformed stream ticket")
    expires_s, nonce, mac = parts
    try:
        expires = int(expires_s)
    except ValueError:
        raise TicketError("malformed stream ticket") from None
    if expires <= time.time():
        raise TicketError("stream ticket expired")
    if not hmac.compare_digest(mac, _mac(secret, call_sid, worker_id, expires, nonce)):
        raise TicketError("stream ticket does not match this call and worker")
    return Ticket(expires=expires, nonce=nonce)


async def consume_ticket(redis: aioredis.Redis, keys: RedisKeys, secret: str, ticket: str | None,
                         call_sid: str, worker_id: str) -> Ticket:
    """Verify the ticket, then take its nonce in one atomic `SET NX` that expires with the ticket:
    the first use wins, any other (a replay, now or concurrent) raises TicketError."""
    checked = verify_ticket(secret, ticket, call_sid, worker_id)
    ttl_ms = max(1, math.ceil(checked.remaining_s() * 1000))
    if not await redis.set(keys.ticket(checked.nonce), call_sid, nx=True, px=ttl_ms):
        raise TicketError("stream ticket already used")
    return checked


def outbound_url_token(secret: str, dial_job_id: str, attempt: int) -> str:
    """Token in the dialer's outbound TwiML URL: it names one job's one attempt, so the URL
    cannot be replayed for another job."""
    msg = f"outbound|{dial_job_id}|{attempt}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def verify_outbound_url_token(secret: str, token: str | None, dial_job_id: str, attempt: int) -> None:
    if not token or not hmac.compare_digest(token, outbound_url_token(secret, dial_job_id, attempt)):
        raise TicketError("outbound TwiML token does not match this dial job")
