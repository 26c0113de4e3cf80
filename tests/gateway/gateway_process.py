"""A gateway as its own process (`python -m voicebot_gateway`), for tests that signal or kill it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from helpers.servers import Service, free_port, python_module
from helpers.stub_worker import TICKET_SECRET

AUTH_TOKEN = "gateway-test-token"  # the test gateway's (conftest)


@contextlib.contextmanager
def gateway_process(log_path: Path, redis_url: str, redis_prefix: str, profiles_path: Path,
                    **env: str) -> Iterator[tuple[str, Service]]:
    """Its base URL and process, set up as the in-thread test gateway (conftest); `env`: more settings."""
    port = free_port()
    base = {"VOICEBOT_REDIS_URL": redis_url, "VOICEBOT_REDIS_PREFIX": redis_prefix,
            "VOICEBOT_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "VOICEBOT_STREAM_TICKET_SECRET": TICKET_SECRET,
            "VOICEBOT_AGENT_PROFILES_PATH": str(profiles_path), "VOICEBOT_TWILIO_API_BASE_URL": "http://127.0.0.1:9",
            "VOICEBOT_GATEWAY_HOST": "127.0.0.1", "VOICEBOT_GATEWAY_PORT": str(port),
            "VOICEBOT_GATEWAY_WORKER_START_GRACE_S": "0"}
    service = Service(python_module("voicebot_gateway"), {**base, **env}, f"http://127.0.0.1:{port}/healthz",
                      log_path).wait_ready()
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        service.stop()
