from __future__ import annotations

from pathlib import Path

import pytest

from helpers.servers import uvicorn_thread
from helpers.stub_worker import TICKET_SECRET
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.signatures import SignatureChecker
from voicebot_gateway.app import create_app
from voicebot_gateway.settings import GatewaySettings

AUTH_TOKEN = "gateway-test-token"

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


@pytest.fixture
async def registry(redis_url, redis_prefix):
    redis = connect(redis_url)
    yield WorkerRegistry(redis, RedisKeys(redis_prefix))
    await redis.aclose()
