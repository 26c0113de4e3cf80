"""Dialer REST API: `python -m voicebot_dialer.api` (FastAPI; OpenAPI at /docs and /openapi.json)."""

# No `from __future__ import annotations`: FastAPI resolves the closures' Depends() at runtime.

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp

from voicebot_core.logs import setup_logging
from voicebot_core.redis_client import connect
from voicebot_core.settings import load_settings
from voicebot_core.telemetry import setup_tracing
from voicebot_dialer import routes_call_media, routes_call_records, routes_calls, routes_campaigns, routes_workers
from voicebot_dialer.api_keys import ApiKeyError, ApiKeys
from voicebot_dialer.auth import Auth
from voicebot_dialer.body_limit import BodySizeLimit
from voicebot_dialer.console_pages import mount_console
from voicebot_dialer.enqueue import producer_for, webhook_emitter
from voicebot_dialer.errors import install_error_handlers
from voicebot_dialer.event_feed import DialEventFeed
from voicebot_dialer.openapi_doc import install_openapi
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings, get_settings


def create_app(settings: DialerSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # raises ApiKeyError when the keys file cannot be used at start
    auth = Auth(ApiKeys(settings.api_keys, settings.dialer_api_keys_file, allow_public=settings.dev_mode))
    producer = producer_for(settings)
    dialer = DialerService(settings, emit_webhook=webhook_emitter(producer))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.event_feed = DialEventFeed(connect(settings.redis_target), dialer.keys)
        yield
        await app.state.event_feed.aclose()

    app = FastAPI(title="voicebot dialer", version="0.1.0", lifespan=lifespan,
                  description="Dial-out jobs and campaigns placed through Twilio, paced and retried.")
    app.state.dialer = dialer

    install_error_handlers(app)

    # health
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        try:
            dialer.store.ping()
        except Exception:
            return JSONResponse({"status": "redis unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes_calls.build_router(dialer, settings, auth))
    app.include_router(routes_call_media.build_router(dialer, auth))
    app.include_router(routes_campaigns.build_router(dialer, settings, auth))
    app.include_router(routes_call_records.build_router(dialer, auth))
    app.include_router(routes_workers.build_router(dialer, auth))
    install_openapi(app, settings)
    if settings.dialer_console_enabled:
        mount_console(app)
    return app


def build_asgi_app(settings: DialerSettings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    return BodySizeLimit(create_app(settings), settings.dialer_max_request_bytes)


def main() -> None:
    settings = load_settings(DialerSettings)  # exits with the error on a default secret outside dev mode
    setup_logging("dialer-api", settings.log_level, settings.log_json, settings.mask_phone_numbers)
    setup_tracing("voicebot-dialer-api")
    try:
        app = build_asgi_app(settings)
    except ApiKeyError as exc:
        raise SystemExit(f"DialerSettings: refusing to start: {exc}") from None
    uvicorn.run(app, host=settings.dialer_host, port=settings.dialer_port,
                log_config=None, proxy_headers=True)


if __name__ == "__main__":
    main()
