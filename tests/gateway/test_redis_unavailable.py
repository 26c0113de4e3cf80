"""Redis down, frozen or restarted: new callers hear the busy message (never a 5xx or silence), live calls go on.

Each test runs its own redis-server (AOF on) so it can stop, freeze and restart it."""

import asyncio
import json
import time
import uuid
import xml.etree.ElementTree as ET

import httpx
import pytest
import redis
from gateway.busy_message import assert_busy_once
from gateway.twilio_frames import CALL, STREAM, connected, media, open_stream, start, start_call
from websockets.exceptions import ConnectionClosed

from helpers.redis_server import RedisServer
from helpers.stub_worker import StubWorker
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry

FORM = {"CallSid": "CA" + "4" * 32, "AccountSid": "AC" + "0" * 32, "From": "+15550001111",
        "To": "+15550003333", "CallStatus": "ringing", "Direction": "inbound"}
REDIS_TIMEOUT_S = 1.0


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def redis_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"  # the server is the test's own: nothing to clean up


@pytest.fixture
def gateway_settings(gateway_settings):
    return gateway_settings.model_copy(update={"gateway_redis_timeout_s": REDIS_TIMEOUT_S})


def _voice(gateway, signer) -> httpx.Response:
    url = f"{gateway}/twilio/voice"
    return httpx.post(url, data=FORM, headers={"X-Twilio-Signature": signer.sign(url, FORM)}, timeout=30)


def _says_busy(response: httpx.Response) -> bool:
    root = ET.fromstring(response.text)
    say = root.find("./Say")
    return say is not None and "agents are busy" in (say.text or "") and root.find("./Hangup") is not None


def test_voice_webhook_with_redis_down_says_busy_then_recovers(gateway, signer, redis_server):
    redis_server.stop()
    response = _voice(gateway, signer)
    assert response.status_code == 200, response.text
    assert _says_busy(response), response.text
    redis_server.start()
    response = _voice(gateway, signer)
    assert response.status_code == 200 and ET.fromstring(response.text).find("./Connect/Stream") is not None


def test_voice_webhook_with_redis_frozen_says_busy_within_the_timeout(gateway, signer, redis_server):
    redis_server.freeze()
    try:
        began = time.monotonic()
        response = _voice(gateway, signer)
        waited = time.monotonic() - began
    finally:
        redis_server.thaw()
    assert response.status_code == 200 and _says_busy(response), response.text
    assert waited < REDIS_TIMEOUT_S + 2, waited


@pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)
async def test_a_stream_starting_with_redis_down_gets_the_busy_message(gateway, signer, twilio_rest, redis_server):
    redis_server.stop()
    ws = await start_call(gateway, signer)
    await assert_busy_once(ws, twilio_rest)


@pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)
async def test_a_live_call_goes_on_through_a_redis_restart(gateway, signer, redis_server, redis_url, redis_prefix):
    redis = connect(redis_url)
    registry = WorkerRegistry(redis, RedisKeys(redis_prefix))
    try:
        async with StubWorker("w1") as worker:
            await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
            ws = await open_stream(gateway, signer)
            await ws.send(connected())
            await ws.send(start())
            await ws.send(media(0))
            await asyncio.wait_for(ws.recv(), 5)
            await asyncio.to_thread(redis_server.stop)
            for seq in range(1, 5):  # Redis is down: the relay does not need it
                await ws.send(media(seq))
                await asyncio.wait_for(ws.recv(), 5)
            await asyncio.to_thread(redis_server.start)
            await ws.send(json.dumps({"event": "stop", "streamSid": STREAM, "stop": {"callSid": CALL}}))
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd.code == 1000
            # the registration survived the restart (AOF), and the call's slot was freed after it
            for _ in range(50):
                if not await redis.smembers(RedisKeys(redis_prefix).worker_calls("w1")):
                    break
                await asyncio.sleep(0.1)
            assert await redis.smembers(RedisKeys(redis_prefix).worker_calls("w1")) == set()
    finally:
        await redis.aclose()


def test_a_status_callback_with_redis_down_is_applied_once_redis_is_back(gateway, signer, redis_server, redis_url,
                                                                          redis_prefix):
    """Twilio sends each callback once: answered 204, stored and handed to the dialer when Redis returns."""
    form = {**FORM, "CallStatus": "completed", "CallDuration": "12", "Direction": "outbound-api"}
    url = f"{gateway}/twilio/status?dial_job_id=job-1&attempt=1"
    redis_server.stop()
    began = time.monotonic()
    response = httpx.post(url, data=form, headers={"X-Twilio-Signature": signer.sign(url, form)}, timeout=30)
    assert response.status_code == 204, response.text
    assert time.monotonic() - began < REDIS_TIMEOUT_S + 2
    time.sleep(1.0)
    redis_server.start()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (client.hget(keys.call(FORM["CallSid"]), "status")
                                               and client.llen("dialer")):
        time.sleep(0.1)
    events = [json.loads(e) for e in client.lrange(keys.call_events(FORM["CallSid"]), 0, -1)]
    assert [(e["kind"], e["status"]) for e in events] == [("status", "completed")]
    assert client.hget(keys.call(FORM["CallSid"]), "status") == "completed"
    task = json.loads(client.lindex("dialer", 0))  # the dialer's Celery queue
    assert task["headers"]["task"] == "voicebot_dialer.handle_call_status" and client.llen("dialer") == 1


def test_the_gateway_stays_ready_without_redis(gateway, redis_server):
    """It still answers callers (the busy message): out of the Service, they would get Twilio's application error."""
    assert httpx.get(f"{gateway}/readyz").json() == {"status": "ready", "redis": "ok"}
    redis_server.freeze()
    try:
        began = time.monotonic()
        frozen = httpx.get(f"{gateway}/readyz", timeout=30)
        assert time.monotonic() - began < REDIS_TIMEOUT_S + 1  # within a kubelet probe's timeout
    finally:
        redis_server.thaw()
    redis_server.stop()
    down = httpx.get(f"{gateway}/readyz")
    assert (frozen.status_code, down.status_code) == (200, 200)
    assert frozen.json()["redis"].startswith("unavailable") and down.json()["redis"].startswith("unavailable")
