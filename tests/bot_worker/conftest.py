from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from helpers.constants import TEST_PROFILES_PATH as PROFILES_PATH
from helpers.constants import WORKER_TICKET_SECRET as TICKET_SECRET
from helpers.servers import free_port, uvicorn_thread
from helpers.twilio_rest_recorder import create_rest_recorder
from voicebot_worker.app import create_app
from voicebot_worker.settings import WorkerSettings


@pytest.fixture
def worker_factory(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., tuple[str, WorkerSettings]]]:
    """Start a real worker app (uvicorn in a thread, real Redis); returns (ws base URL, settings)."""
    with ExitStack() as stack:
        def start(**overrides: object) -> tuple[str, WorkerSettings]:
            port = free_port()
            fields = dict(
                redis_url=redis_url, redis_prefix=redis_prefix, worker_id=f"w-{uuid.uuid4().hex[:8]}",
                worker_port=port, stream_ticket_secret=TICKET_SECRET, agent_profiles_path=str(PROFILES_PATH),
                storage_dir=str(tmp_path / "call-data"), twilio_api_base_url="http://127.0.0.1:9",
                log_json=False,
            )
            fields.update(overrides)
            settings = WorkerSettings(**fields)
            base = stack.enter_context(uvicorn_thread(create_app(settings), port=port))
            return base.replace("http://", "ws://"), settings
        yield start


@pytest.fixture
def rest_updates() -> Iterator[tuple[str, list[dict]]]:
    """(base URL, recorded updates) of a stand-in for Twilio's Calls REST resource."""
    updates: list[dict] = []
    with uvicorn_thread(create_rest_recorder(updates)) as base:
        yield base, updates
