"""Ends a call whose pipeline has shown no sign of life for `VOICEBOT_WORKER_PIPELINE_IDLE_TIMEOUT_S`.

pipecat's PipelineWorker does this with an observer that every frame of the pipeline is queued to (a
queue put and a task wake-up per frame, ~3 % of the worker's event loop at 10 calls); the call
session already hears of the same signs of life (bot audio sent, caller speech, marks), so it feeds
this timer instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class ActivityWatchdog:
    def __init__(self, timeout_s: float, on_idle: Callable[[], Awaitable[None]]) -> None:
        self._timeout_s = timeout_s
        self._on_idle = on_idle
        self._last = time.monotonic()

    def activity(self) -> None:
        self._last = time.monotonic()

    async def run(self) -> None:
        """Returns after calling `on_idle` once; cancel it when the call ends first."""
        while True:
            left = self._last + self._timeout_s - time.monotonic()
            if left <= 0:
                await self._on_idle()
                return
            await asyncio.sleep(left)  # activity moves the deadline; one timer per call, not per frame
