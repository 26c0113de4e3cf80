"""What the gateway's handlers share for the life of the process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis
from twilio.rest import Client

from voicebot_core.calls import CallStore
from voicebot_core.dial_jobs import DialJobReader
from voicebot_core.profiles import AgentProfiles
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.signatures import SignatureChecker
from voicebot_gateway.liveness import GatewayLiveness
from voicebot_gateway.settings import GatewaySettings


@dataclass
class GatewayState:
    settings: GatewaySettings
    redis: aioredis.Redis
    keys: RedisKeys
    registry: WorkerRegistry
    calls: CallStore
    dial_jobs: DialJobReader  # read-only: the dialer owns dial jobs
    profiles: AgentProfiles
    signatures: SignatureChecker
    twilio: Client
    workers_http: httpx.AsyncClient  # forwards status callbacks; one pool for the process
    liveness: GatewayLiveness  # this gateway's beat and streams in Redis; marks a dead gateway's calls failed
    draining: bool = False
    open_streams: int = 0
    streams_idle: asyncio.Event = field(default_factory=asyncio.Event)
    background: set[asyncio.Task] = field(default_factory=set)

    def stream_opened(self, call_sid: str) -> None:
        self.open_streams += 1
        self.streams_idle.clear()
        self.liveness.opened(call_sid)

    def stream_closed(self, call_sid: str) -> None:
        self.liveness.closed(call_sid)
        self.open_streams -= 1
        if self.open_streams <= 0:
            self.streams_idle.set()

    def spawn(self, coro) -> None:
        """Fire-and-forget work that must not be garbage collected mid-flight."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
