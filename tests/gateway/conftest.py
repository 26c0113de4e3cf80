from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from helpers.servers import free_port, uvicorn_thread
from helpers.stub_worker import TICKET_SECRET
from helpers.twilio_rest_recorder import create_rest_recorder
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.serving import ServerConfig
from voicebot_core.signatures import SignatureChecker
from voicebot_gateway.app import create_app
from voicebot_gateway.media_relay import StreamRelayProtocol
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
def twilio_rest_server():
    updates: list[dict] = []
    with uvicorn_thread(create_rest_recorder(updates)) as base_url:
        yield base_url, updates


@pytest.fixture
def twilio_rest(twilio_rest_server) -> list[dict]:
    """The updates the gateway made to Twilio's Calls REST resource (a recorder stands in)."""
    return twilio_rest_server[1]


@pytest.fixture
def trusted_proxies() -> str:
    """VOICEBOT_GATEWAY_TRUSTED_PROXIES of the test gateway: none (parametrize to trust the tests' 127.0.0.1)."""
    return ""


@pytest.fixture
def public_base_url() -> str:
    """VOICEBOT_GATEWAY_PUBLIC_BASE_URL of the test gateway: none (parametrize to set one)."""
    return ""


@pytest.fixture
def gateway_settings(redis_url, redis_prefix, profiles_path, trusted_proxies, public_base_url,
                     request) -> GatewaySettings:
    rest_url = "http://127.0.0.1:9"  # nothing listens: the REST API is down
    if "twilio_rest" in request.fixturenames:
        rest_url = request.getfixturevalue("twilio_rest_server")[0]
    grace = request.node.get_closest_marker("start_grace")
    return GatewaySettings(
        redis_url=redis_url, redis_prefix=redis_prefix, twilio_auth_token=AUTH_TOKEN,
        stream_ticket_secret=TICKET_SECRET, agent_profiles_path=str(profiles_path),
        twilio_api_base_url=rest_url, gateway_worker_connect_timeout_s=1.0,
        gateway_trusted_proxies=trusted_proxies, gateway_public_base_url=public_base_url,
        # stub workers start at once: no start grace unless a test asks for one (@pytest.mark.start_grace(s))
        gateway_worker_start_grace_s=grace.args[0] if grace else 0,
    )


@contextlib.contextmanager
def gateway_thread(settings: GatewaySettings, ws: object):
    """The gateway's app under uvicorn in a thread, with the media path `ws` serves and uvicorn's
    forwarded-header handling as `python -m voicebot_gateway` sets it (voicebot_core.serving)."""
    port = free_port()
    config = ServerConfig(create_app(settings), trusted_proxies=settings.trusted_proxies, host="127.0.0.1",
                          port=port, log_level="warning", lifespan="on", log_config=None, ws=ws)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def gateway(request, gateway_settings):
    """The gateway's base URL. Media streams go through the byte-level relay, as
    `python -m voicebot_gateway` serves them, or with `indirect` parameter "asgi" through the
    FastAPI route that serves them under plain uvicorn."""
    ws = "auto" if getattr(request, "param", "relay") == "asgi" else StreamRelayProtocol
    with gateway_thread(gateway_settings, ws) as base_url:
        yield base_url


@pytest.fixture
def signer() -> SignatureChecker:
    return SignatureChecker(AUTH_TOKEN)


@pytest.fixture
async def registry(redis_url, redis_prefix):
    redis = connect(redis_url)
    yield WorkerRegistry(redis, RedisKeys(redis_prefix))
    await redis.aclose()
