"""A call record and its transcript as server-sent events, until the call ends
(`GET /v1/call-records/{call_sid}/live`). asyncio Redis, so a followed call holds no worker thread."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from voicebot_core.calls import CallRecord, CallStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.call_record_views import is_live, record_view

POLL_S = 0.5
KEEPALIVE_S = 15.0  # under the idle timeouts of common proxies and load balancers (60 s)
KEEPALIVE = ": keepalive\n\n"


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class CallRecordStream:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, full_numbers: bool, poll_s: float = POLL_S,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        self._redis = redis
        self._keys = keys
        self._store = CallStore(redis, keys)  # read only here
        self._full_numbers = full_numbers
        self._poll_s = poll_s
        self._keepalive_s = keepalive_s

    async def record(self, call_sid: str) -> CallRecord | None:
        return await self._store.record(call_sid)

    async def _campaign_of(self, dial_job_id: str) -> str:
        return (await self._redis.hget(self._keys.dial_job(dial_job_id), "campaign_id") or "") if dial_job_id else ""

    async def events(self, call_sid: str, disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
        """`record` and `transcript` at once and on each change (polled), `end` after the last ones."""
        last_record: CallRecord | None = None
        last_transcript: list[dict[str, Any]] | None = None
        campaign_id = ""
        quiet_since = time.monotonic()
        while True:
            record = await self._store.record(call_sid)
            if record is None:  # deleted under us (retention): nothing more will come
                yield sse("end", {"call_sid": call_sid, "outcome": "", "end_reason": ""})
                return
            transcript = await self._store.transcript(call_sid) or []
            out: list[str] = []
            # Compared raw: the view's duration_s grows on every poll of a live call.
            if record != last_record:
                if last_record is None or record.dial_job_id != last_record.dial_job_id:
                    campaign_id = await self._campaign_of(record.dial_job_id)
                out.append(sse("record", record_view(record, campaign_id, self._full_numbers)))
                last_record = record
            if transcript != last_transcript:
                out.append(sse("transcript", {"entries": transcript}))
                last_transcript = transcript
            if not is_live(record):
                out.append(sse("end", {"call_sid": call_sid, "outcome": record.outcome,
                                       "end_reason": record.end_reason}))
                yield "".join(out)
                return
            if out:
                yield "".join(out)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self._keepalive_s:
                yield KEEPALIVE
                quiet_since = time.monotonic()
            if await disconnected():
                return
            await asyncio.sleep(self._poll_s)
