"""ActivityWatchdog: a call's pipeline with no sign of life for the timeout is ended, once."""

from __future__ import annotations

import asyncio
import time

from voicebot_worker.watchdog import ActivityWatchdog


async def test_activity_keeps_the_call_and_silence_ends_it_once_after_the_timeout():
    ended: list[float] = []

    async def on_idle() -> None:
        ended.append(time.monotonic())

    watchdog = ActivityWatchdog(0.3, on_idle)
    task = asyncio.create_task(watchdog.run())
    started = time.monotonic()
    for _ in range(5):  # 0.5 s of activity every 0.1 s
        await asyncio.sleep(0.1)
        watchdog.activity()
    assert not ended
    last_activity = time.monotonic()
    await asyncio.wait_for(task, 2)
    assert len(ended) == 1
    assert 0.28 <= ended[0] - last_activity < 0.6 and ended[0] - started >= 0.78
