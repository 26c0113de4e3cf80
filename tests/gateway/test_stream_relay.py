import asyncio
import base64
import json

import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers.stub_worker import StubWorker
from voicebot_core.redis_keys import RedisKeys

CALL = "CA" + "a" * 32
STREAM = "MZ" + "b" * 32


def _connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def _start(call_sid: str = CALL) -> str:
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": STREAM, "start": {
        "accountSid": "AC" + "0" * 32, "streamSid": STREAM, "callSid": call_sid, "tracks": ["inbound"],
        "customParameters": {"direction": "inbound"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


def _media(seq: int) -> str:
    payload = base64.b64encode(bytes([0xFF]) * 160).decode()
    return json.dumps({"event": "media", "sequenceNumber": str(seq + 2), "streamSid": STREAM,
                       "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(seq * 20),
                                 "payload": payload}})


async def _open(gateway, signer, call_sid=CALL, signature=None):
    url = gateway.replace("http://", "ws://") + f"/twilio/stream/{call_sid}"
    sig = signature if signature is not None else signer.sign(url, {})
    return await connect(url, additional_headers={"X-Twilio-Signature": sig})


async def test_frames_are_relayed_unchanged_both_ways(gateway, signer, registry, redis_url, redis_prefix):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=2)
        ws = await _open(gateway, signer)
        sent = [_connected(), _start(), *(_media(i) for i in range(5))]
        for text in sent:
            await ws.send(text)
        echoes = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(5)]
        assert all(e["event"] == "media" for e in echoes)
        assert worker.received[CALL] == sent  # byte-for-byte, in order
        assert worker.tickets_ok == [True]
        stored = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(RedisKeys(redis_prefix).call(CALL))
        assert stored["worker_id"] == "w1" and stored["stream_sid"] == STREAM
        assert (await registry.list_workers())[0].active_calls == 1
        await ws.send(json.dumps({"event": "stop", "streamSid": STREAM, "stop": {"callSid": CALL}}))
        await asyncio.wait_for(worker.closed[CALL].wait(), 5)
        await ws.close()
        for _ in range(50):
            if (await registry.list_workers())[0].active_calls == 0:
                break
            await asyncio.sleep(0.05)
        assert (await registry.list_workers())[0].active_calls == 0


async def test_upgrade_with_bad_signature_is_refused(gateway, signer):
    with pytest.raises(InvalidStatus) as info:
        await _open(gateway, signer, signature="Zm9yZ2Vk")
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        url = gateway.replace("http://", "ws://") + f"/twilio/stream/{CALL}"
        await connect(url)  # no signature header at all


@pytest.mark.parametrize(
    ("bad_frame", "reason"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"event": "teleport", "streamSid": STREAM}), "unknown event"),
        (json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "A" * 70_000}}), "exceeds"),
    ],
)
async def test_malformed_frame_closes_only_that_stream(gateway, signer, registry, bad_frame, reason):
    other_call = "CA" + "c" * 32
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=4)
        healthy = await _open(gateway, signer, call_sid=other_call)
        await healthy.send(_connected())
        await healthy.send(_start(other_call))
        broken = await _open(gateway, signer)
        await broken.send(_connected())
        await broken.send(_start())
        await broken.send(bad_frame)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(broken.recv(), 5)
        assert info.value.rcvd.code == 1008 and reason in info.value.rcvd.reason
        await asyncio.wait_for(worker.closed[CALL].wait(), 5)
        # the other call still flows
        await healthy.send(_media(1))
        assert json.loads(await asyncio.wait_for(healthy.recv(), 5))["event"] == "media"
        await healthy.close()


async def test_media_before_start_closes_the_stream(gateway, signer):
    ws = await _open(gateway, signer)
    await ws.send(_connected())
    await ws.send(_media(0))
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)
    assert "media before start" in info.value.rcvd.reason


async def test_refusing_worker_is_skipped_for_the_next(gateway, signer, registry):
    async with StubWorker("w1") as good:
        # w0 advertises an address nobody listens on: connection refused -> next worker
        await registry.register("w0", "ws://127.0.0.1:9", capacity=10)
        await registry.register("w1", f"ws://127.0.0.1:{good.port}", capacity=1)
        ws = await _open(gateway, signer)
        await ws.send(_connected())
        await ws.send(_start())
        await ws.send(_media(0))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        workers = {w.worker_id: w for w in await registry.list_workers()}
        assert workers["w0"].active_calls == 0 and workers["w1"].active_calls == 1
        await ws.close()


async def test_worker_killed_mid_call_is_replaced_and_the_stream_continues(gateway, signer, registry,
                                                                        redis_url, redis_prefix):
    async with StubWorker("w1") as first, StubWorker("w2") as second:
        await registry.register("w1", f"ws://127.0.0.1:{first.port}", capacity=1)
        ws = await _open(gateway, signer)
        await ws.send(_connected())
        await ws.send(_start())
        await ws.send(_media(0))
        await asyncio.wait_for(ws.recv(), 5)
        await registry.register("w2", f"ws://127.0.0.1:{second.port}", capacity=1)
        first.connections[CALL].transport.abort()  # like kill -9: no close frame
        for seq in range(1, 40):
            await ws.send(_media(seq))
            await asyncio.sleep(0.02)
            if CALL in second.received:
                break
        assert second.received[CALL][:2] == [_connected(), _start()]
        events = redis.Redis.from_url(redis_url, decode_responses=True).lrange(
            RedisKeys(redis_prefix).call_events(CALL), 0, -1)
        assert any('"kind": "reattached"' in e and '"w2"' in e for e in events)
        await ws.close()
