"""Reading and authenticating Twilio's webhook requests."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

from voicebot_core import metrics
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureError, public_url
from voicebot_gateway.state import GatewayState

log = logging.getLogger(__name__)


async def read_form(request: Request, max_bytes: int) -> dict[str, str]:
    """The POST form, refusing bodies over `max_bytes` without buffering them whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, f"body exceeds the {max_bytes}-byte limit")
    ctype = request.headers.get("content-type", "")
    if body and "application/x-www-form-urlencoded" not in ctype:
        raise HTTPException(415, "Twilio webhooks are application/x-www-form-urlencoded")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise HTTPException(400, "body is not UTF-8") from None


async def signed_form(request: Request, state: GatewayState, endpoint: str) -> dict[str, str]:
    """The form of a request Twilio signed; 403 with the reason otherwise."""
    form = await read_form(request, state.settings.gateway_max_body_bytes)
    if not state.settings.gateway_validate_signatures:
        return form
    url = public_url(
        request_url=str(request.url),
        headers=request.headers,
        public_base_url=state.settings.gateway_public_base_url or None,
    )
    try:
        state.signatures.check(url, form, request.headers.get(SIGNATURE_HEADER))
    except SignatureError as exc:
        metrics.REJECTED_SIGNATURES.labels(endpoint=endpoint).inc()
        log.warning("rejected %s webhook: %s", endpoint, exc)
        raise HTTPException(403, str(exc)) from None
    return form
