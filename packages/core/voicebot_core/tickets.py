"""Short-lived per-call tickets: a bot-worker accepts a stream only from the gateway.

ticket = "<expires>.<hex hmac-sha256(secret, call_sid|worker_id|expires)>"
"""

from __future__ import annotations

import hashlib
import hmac
import time

# Sent as a header, never in the URL: URLs end up in access logs.
TICKET_HEADER = "X-Voicebot-Ticket"


class TicketError(PermissionError):
    pass


def _mac(secret: str, call_sid: str, worker_id: str, expires: int) -> str:
    msg = f"{call_sid}|{worker_id}|{expires}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def issue_ticket(secret: str, call_sid: str, worker_id: str, ttl_s: int = 30) -> str:
    expires = int(time.time()) + ttl_s
    return f"{expires}.{_mac(secret, call_sid, worker_id, expires)}"


def verify_ticket(secret: str, ticket: str | None, call_sid: str, worker_id: str) -> None:
    if not ticket or "." not in ticket:
        raise TicketError("missing stream ticket")
    expires_s, mac = ticket.split(".", 1)
    try:
        expires = int(expires_s)
    except ValueError:
        raise TicketError("malformed stream ticket") from None
    if expires < time.time():
        raise TicketError("stream ticket expired")
    if not hmac.compare_digest(mac, _mac(secret, call_sid, worker_id, expires)):
        raise TicketError("stream ticket does not match this call and worker")


def outbound_url_token(secret: str, dial_job_id: str, attempt: int) -> str:
    """Token in the dialer's outbound TwiML URL: it names one job's one attempt, so the URL
    cannot be replayed for another job."""
    msg = f"outbound|{dial_job_id}|{attempt}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def verify_outbound_url_token(secret: str, token: str | None, dial_job_id: str, attempt: int) -> None:
    if not token or not hmac.compare_digest(token, outbound_url_token(secret, dial_job_id, attempt)):
        raise TicketError("outbound TwiML token does not match this dial job")
