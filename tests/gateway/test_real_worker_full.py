"""A real bot-worker that is full although the registry showed a free slot: it closes the gateway's stream
with 1013, and with no other worker the caller gets the busy message."""

import uuid
from pathlib import Path

import httpx
import pytest
from gateway.busy_message import assert_busy_once
from gateway.twilio_frames import start_call

from helpers.constants import TEST_PROFILES_PATH
from helpers.servers import free_port, uvicorn_thread
from helpers.stub_worker import TICKET_SECRET
from helpers.twilio_peer import TwilioPeer
from voicebot_core.tickets import issue_ticket
from voicebot_worker.app import create_app
from voicebot_worker.settings import WorkerSettings

pytestmark = pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)


@pytest.fixture
def worker(redis_url: str, redis_prefix: str, tmp_path: Path):
    """A real worker with one slot, under uvicorn in a thread; yields (ws base URL, settings)."""
    port = free_port()
    settings = WorkerSettings(
        redis_url=redis_url, redis_prefix=redis_prefix, worker_id=f"w-{uuid.uuid4().hex[:8]}", worker_port=port,
        worker_capacity=1, stream_ticket_secret=TICKET_SECRET, agent_profiles_path=str(TEST_PROFILES_PATH),
        storage_dir=str(tmp_path / "call-data"), twilio_api_base_url="http://127.0.0.1:9", log_json=False,
    )
    with uvicorn_thread(create_app(settings), port=port) as base:
        yield base, settings


async def test_a_real_worker_full_behind_the_registrys_back_gets_the_caller_the_busy_message(
        gateway, signer, worker, registry, twilio_rest):
    base, settings = worker
    # a call opened on the worker directly takes its only slot; the registry, filled by the gateway's
    # reservations, still shows it free (as when two gateways' reservations and the worker's count race)
    direct_sid = "CA" + uuid.uuid4().hex
    direct = TwilioPeer(f"{base.replace('http://', 'ws://')}/streams/{direct_sid}"
                        f"?ticket={issue_ticket(TICKET_SECRET, direct_sid, settings.worker_id)}",
                        direct_sid, custom_parameters={"direction": "inbound", "agent_profile": "fake-three-turns"})
    await direct.connect()
    try:
        await direct.wait_for(lambda: direct.log.events("media"), timeout=15)
        assert (await registry.list_workers())[0].free_slots == 1

        ws = await start_call(gateway, signer)
        await assert_busy_once(ws, twilio_rest)
        async with httpx.AsyncClient() as client:
            ready = (await client.get(f"{base}/readyz")).json()
        assert ready["calls"] == 1  # the direct call goes on
        assert not direct.closed.is_set()
    finally:
        await direct.close()
