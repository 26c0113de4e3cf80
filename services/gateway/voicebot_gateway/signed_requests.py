"""Reading and authenticating Twilio's webhook requests."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

from voicebot_core import metrics
from voicebot_core.serving import PEER_SCOPE_KEY
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureError, is_trusted_proxy, public_url
from voicebot_gateway.settings import GatewaySettings
from voicebot_gateway.state import GatewayState

log = logging.getLogger(__name__)


def scope_peer(scope: Mapping[str, Any]) -> str | None:
    """The connection's peer address: kept by `voicebot_core.serving.ServerConfig` before uvicorn's
    X-Forwarded-For handling replaced `client`; `client` under a plain uvicorn config."""
    peer = scope.get(PEER_SCOPE_KEY) if PEER_SCOPE_KEY in scope else scope.get("client")
    return peer[0] if peer else None


def twilio_url(settings: GatewaySettings, request_url: str, headers: Mapping[str, str], peer: str | None,
               websocket: bool = False) -> str:
    """The URL Twilio requested (and signed): the public base URL when one is set; else the request's
    own, with X-Forwarded-Proto/Host believed only when `peer` is one of gateway_trusted_proxies."""
    return public_url(request_url=request_url, headers=headers,
                      public_base_url=settings.gateway_public_base_url or None, websocket=websocket,
                      trust_forwarded=is_trusted_proxy(peer, settings.gateway_trusted_proxies))


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
    url = twilio_url(state.settings, str(request.url), request.headers, scope_peer(request.scope))
    try:
        state.signatures.check(url, form, request.headers.get(SIGNATURE_HEADER))
    except SignatureError as exc:
        metrics.REJECTED_SIGNATURES.labels(endpoint=endpoint).inc()
        log.warning("rejected %s webhook: %s", endpoint, exc)
        raise HTTPException(403, str(exc)) from None
    return form
