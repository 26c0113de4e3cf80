from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.server import serve

from helpers.servers import free_port, uvicorn_thread
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.signatures import SignatureChecker
from voicebot_core.tickets import verify_ticket
from voicebot_gateway.app import create_app
from voicebot_gateway.settings import GatewaySettings

AUTH_TOKEN = "gateway-test-token"
TICKET_SECRET = "gateway-test-ticket-secret"

PROFILES = """
default_profile: support
numbers:
  "+15550002222": sales
profiles:
  support: {providers: fake}
  sales: {providers: fake, voicemail_message: "Hi {name}, please call us back."}
"""


@pytest.fixture
def profiles_path(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(PROFILES)
    return path


@pytest.fixture
def gateway_settings(redis_url, redis_prefix, profiles_path) -> GatewaySettings:
    return GatewaySettings(
        redis_url=redis_url, redis_prefix=redis_prefix, twilio_auth_token=AUTH_TOKEN,
        stream_ticket_secret=TICKET_SECRET, agent_profiles_path=str(profiles_path),
        twilio_api_base_url="http://127.0.0.1:9", gateway_worker_connect_timeout_s=1.0,
    )


@pytest.fixture
def gateway(gateway_settings):
    with uvicorn_thread(create_app(gateway_settings)) as base_url:
        yield base_url


@pytest.fixture
def signer() -> SignatureChecker:
    return SignatureChecker(AUTH_TOKEN)


class StubWorker:
    """Stands in for a bot-worker at the socket level: checks the ticket, records what the
    gateway relays, and can push messages back or close."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.port = free_port()
        self.received: dict[str, list[str]] = {}
        self.tickets_ok: list[bool] = []
        self.connections = {}
        self.closed: dict[str, asyncio.Event] = {}

    async def _handler(self, conn) -> None:
        call_sid = conn.request.path.split("?")[0].rsplit("/", 1)[-1]
        ticket = conn.request.path.split("ticket=")[-1]
        try:
            verify_ticket(TICKET_SECRET, ticket, call_sid, self.worker_id)
            self.tickets_ok.append(True)
        except PermissionError:
            self.tickets_ok.append(False)
            await conn.close(1008, "bad ticket")
            return
        self.connections[call_sid] = conn
        self.closed[call_sid] = asyncio.Event()
        try:
            async for message in conn:
                self.received.setdefault(call_sid, []).append(message)
                event = json.loads(message)
                if event["event"] == "media":  # echo audio back as the bot's reply
                    await conn.send(json.dumps({"event": "media", "streamSid": event["streamSid"],
                                                "media": {"payload": event["media"]["payload"]}}))
        finally:
            self.closed[call_sid].set()

    async def __aenter__(self) -> StubWorker:
        self._server = await serve(self._handler, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def registry(redis_url, redis_prefix):
    redis = connect(redis_url)
    yield WorkerRegistry(redis, RedisKeys(redis_prefix))
    await redis.aclose()
