"""Run a FastAPI app under uvicorn with a graceful drain on SIGTERM.

uvicorn's own shutdown closes open WebSockets with 1012 at once. For phone calls we first
stop taking new work (readiness goes 503), wait for the live calls to end (up to a drain
timeout, which the pod's termination grace period must cover), and only then exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)

DrainHook = Callable[[], Awaitable[None]]


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
          ws: type[asyncio.Protocol] | str = "auto") -> None:
    """`ws`: uvicorn's WebSocket protocol (the gateway passes its media relay)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level.lower(), lifespan="on",
        ws_ping_interval=20, ws_ping_timeout=20, timeout_graceful_shutdown=30, access_log=False,
        log_config=None, ws=ws,
    )
    DrainingServer(config, drain).run()
