"""Run a FastAPI app under uvicorn with a graceful drain on SIGTERM.

uvicorn's own shutdown closes open WebSockets with 1012 at once. For phone calls we first
stop taking new work (readiness goes 503), wait for the live calls to end (up to a drain
timeout, which the pod's termination grace period must cover), and only then exit.

Forwarded headers: uvicorn's own default believes X-Forwarded-Proto/For from 127.0.0.1 and ::1
(or FORWARDED_ALLOW_IPS). `ServerConfig` believes them only from the trusted proxies it is given,
from nobody when none, and keeps the connection's own peer address in the scope (`PEER_SCOPE_KEY`)
so the app can apply the same rule to the headers uvicorn does not read (X-Forwarded-Host).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

DrainHook = Callable[[], Awaitable[None]]

# ASGI scope key: the socket's peer (host, port), as it was before X-Forwarded-For replaced `client`
PEER_SCOPE_KEY = "voicebot.peer"


class _KeepPeer:
    """Outermost ASGI layer: records the connection's peer before the proxy-headers middleware runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[PEER_SCOPE_KEY] = scope.get("client")
        await self.app(scope, receive, send)


class ServerConfig(uvicorn.Config):
    """uvicorn's Config with X-Forwarded-Proto/For believed only from `trusted_proxies` (IP addresses
    and CIDR networks, uvicorn's `forwarded_allow_ips`); none given: proxy headers off."""

    def __init__(self, app: Any, *, trusted_proxies: Sequence[str] = (), **kwargs: Any) -> None:
        trusted = [proxy.strip() for proxy in trusted_proxies if proxy.strip()]
        super().__init__(app, proxy_headers=bool(trusted), forwarded_allow_ips=trusted, **kwargs)

    def load(self) -> None:
        super().load()
        self.loaded_app = _KeepPeer(self.loaded_app)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: DrainHook) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_task is None and not self.should_exit:
            log.info("SIGTERM: draining before exit")
            loop = asyncio.get_event_loop()
            self._drain_task = loop.create_task(self._drain_then_exit())
            return
        super().handle_exit(sig, frame)

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        except Exception:  # the process must still exit
            log.exception("drain failed")
        self.should_exit = True


def serve(app: object, host: str, port: int, drain: DrainHook, log_level: str = "info",
          ws: type[asyncio.Protocol] | str = "auto", trusted_proxies: Sequence[str] = ()) -> None:
    """`ws`: uvicorn's WebSocket protocol (the gateway passes its media relay); `trusted_proxies`:
    the peers whose X-Forwarded-* headers are believed (none by default)."""
    config = ServerConfig(
        app, trusted_proxies=trusted_proxies, host=host, port=port, log_level=log_level.lower(), lifespan="on",
        ws_ping_interval=20, ws_ping_timeout=20, timeout_graceful_shutdown=30, access_log=False,
        log_config=None, ws=ws,
    )
    DrainingServer(config, drain).run()
