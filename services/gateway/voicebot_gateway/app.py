"""The gateway's FastAPI application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from voicebot_core.calls import CallStore
from voicebot_core.dial_jobs import DialJobReader
from voicebot_core.profiles import AgentProfiles
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.signatures import SignatureChecker
from voicebot_core.twilio_rest import make_client
from voicebot_gateway import stream_relay, twilio_webhooks
from voicebot_gateway.liveness import GatewayLiveness
from voicebot_gateway.settings import GatewaySettings
from voicebot_gateway.state import GatewayState

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Calls start and end in bursts (hundreds of streams per process): wait for a pooled
        # connection rather than failing with "Too many connections" (the default pool raises).
        redis = connect(settings.redis_target, max_connections=settings.gateway_redis_max_connections,
                        pool_timeout=10)
        keys = RedisKeys(settings.redis_prefix)
        token = settings.twilio_auth_token.get_secret_value()
        registry = WorkerRegistry(redis, keys, outbound_hold_s=settings.gateway_outbound_hold_s)
        calls = CallStore(redis, keys, settings.call_data_retention_s)
        state = GatewayState(
            settings=settings,
            redis=redis,
            keys=keys,
            registry=registry,
            calls=calls,
            dial_jobs=DialJobReader(redis, keys),
            profiles=AgentProfiles.load(settings.agent_profiles_path, settings.transfer_sip_hosts),
            signatures=SignatureChecker(token),
            twilio=make_client(settings.twilio_account_sid, token, settings.twilio_api_base_url),
            workers_http=httpx.AsyncClient(timeout=2.0),
            liveness=GatewayLiveness(redis, keys, calls, registry, settings.gateway_liveness_timeout_s),
        )
        state.streams_idle.set()
        app.state.gateway = state
        state.liveness.start()
        yield
        await state.liveness.stop()
        await state.workers_http.aclose()
        await redis.aclose()

    app = FastAPI(
        title="voicebot gateway",
        summary="Twilio webhooks and Media Streams, relayed to bot-workers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(twilio_webhooks.router)
    app.include_router(stream_relay.router)

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: not draining (Redis reachable or not, in the body)")
    async def readyz() -> Response:
        state: GatewayState = app.state.gateway
        if state.draining:
            return Response('{"status":"draining"}', status_code=503, media_type="application/json")
        # Ready without Redis too: every gateway shares it, so failing here would empty the Service in an
        # outage, and callers would get Twilio's application error instead of this gateway's busy message.
        try:
            async with asyncio.timeout(state.settings.gateway_redis_timeout_s):
                await state.redis.ping()
        except Exception as exc:
            log.warning("readiness: Redis unavailable (%s): new callers hear the busy message", type(exc).__name__)
            return Response(f'{{"status":"ready","redis":"unavailable: {type(exc).__name__}"}}',
                            media_type="application/json")
        return Response('{"status":"ready","redis":"ok"}', media_type="application/json")

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def drain(app: FastAPI) -> None:
    """SIGTERM: refuse new calls, keep open streams until they end or the timeout passes."""
    state: GatewayState = app.state.gateway
    state.draining = True
    log.info("draining: %d open streams", state.open_streams)
    settings = state.settings
    # the load balancer still sends what it routed before it saw /readyz fail: streams arriving now count too
    await asyncio.sleep(min(settings.gateway_drain_linger_s, settings.gateway_drain_timeout_s))
    try:
        await asyncio.wait_for(state.streams_idle.wait(),
                               max(0.0, settings.gateway_drain_timeout_s - settings.gateway_drain_linger_s))
    except TimeoutError:
        log.warning("drain timeout with %d streams still open", state.open_streams)
