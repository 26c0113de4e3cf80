import asyncio
import json

import pytest
import redis
from gateway.twilio_frames import CALL, STREAM, connected, media, open_stream, start
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers.stub_worker import StubWorker
from voicebot_core import metrics
from voicebot_core.redis_keys import RedisKeys

# every stream test against both media paths: the byte-level relay and the FastAPI route
pytestmark = pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)


async def test_frames_are_relayed_unchanged_both_ways(gateway, signer, registry, redis_url, redis_prefix):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=2)
        ws = await open_stream(gateway, signer)
        sent = [connected(), start(), *(media(i) for i in range(5))]
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
        await open_stream(gateway, signer, signature="Zm9yZ2Vk")
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
        # media frames of Twilio's compact shape (the relay's fast path) with a payload that is not base64
        (json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "!!!!" * 54}},
                    separators=(",", ":")), "not base64"),
        (json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "/" * 215}},
                    separators=(",", ":")), "not base64"),  # base64 characters, not a multiple of 4
        (json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "AA=A"}},
                    separators=(",", ":")), "not base64"),  # padding inside
        (json.dumps({"event": "media", "streamSid": STREAM, "media": {"payload": "caf\u00e9"}}), "not base64"),
        # a media frame with no (or an empty) streamSid
        (json.dumps({"event": "media", "media": {"payload": "/" * 216}}, separators=(",", ":")),
         "without a streamSid"),
        (json.dumps({"event": "media", "streamSid": "", "media": {"payload": "/" * 216}}), "without a streamSid"),
    ],
)
async def test_malformed_frame_closes_only_that_stream(gateway, signer, registry, bad_frame, reason):
    other_call = "CA" + "c" * 32
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=4)
        healthy = await open_stream(gateway, signer, call_sid=other_call)
        await healthy.send(connected())
        await healthy.send(start(other_call))
        broken = await open_stream(gateway, signer)
        await broken.send(connected())
        await broken.send(start())
        await broken.send(bad_frame)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(broken.recv(), 5)
        assert info.value.rcvd.code == 1008 and reason in info.value.rcvd.reason
        await asyncio.wait_for(worker.closed[CALL].wait(), 5)
        # the other call still flows
        await healthy.send(media(1))
        assert json.loads(await asyncio.wait_for(healthy.recv(), 5))["event"] == "media"
        await healthy.close()


async def test_media_before_start_closes_the_stream(gateway, signer):
    ws = await open_stream(gateway, signer)
    await ws.send(connected())
    await ws.send(media(0))
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)
    assert "media before start" in info.value.rcvd.reason


async def test_refusing_worker_is_skipped_for_the_next(gateway, signer, registry):
    async with StubWorker("w1") as good:
        # w0 advertises an address nobody listens on: connection refused -> next worker
        await registry.register("w0", "ws://127.0.0.1:9", capacity=10)
        await registry.register("w1", f"ws://127.0.0.1:{good.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await ws.send(media(0))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        workers = {w.worker_id: w for w in await registry.list_workers()}
        assert workers["w0"].active_calls == 0 and workers["w1"].active_calls == 1
        await ws.close()


async def test_worker_killed_mid_call_is_replaced_and_the_stream_continues(gateway, signer, registry,
                                                                        redis_url, redis_prefix):
    async with StubWorker("w1") as first, StubWorker("w2") as second:
        await registry.register("w1", f"ws://127.0.0.1:{first.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await ws.send(media(0))
        await asyncio.wait_for(ws.recv(), 5)
        await registry.register("w2", f"ws://127.0.0.1:{second.port}", capacity=1)
        first.connections[CALL].transport.abort()  # like kill -9: no close frame
        for seq in range(1, 40):
            await ws.send(media(seq))
            await asyncio.sleep(0.02)
            if len(second.received.get(CALL, [])) >= 2:  # the replayed `connected` and `start`
                break
        assert second.received[CALL][:2] == [connected(), start()]
        events = redis.Redis.from_url(redis_url, decode_responses=True).lrange(
            RedisKeys(redis_prefix).call_events(CALL), 0, -1)
        assert any('"kind": "reattached"' in e and '"w2"' in e for e in events)
        # each connection attempt carried a ticket of its own (a ticket is good for one stream)
        assert first.tickets_ok == second.tickets_ok == [True]
        assert len(first.nonces) == len(second.nonces) == 1 and first.nonces != second.nonces
        await ws.close()


async def test_a_worker_refusing_the_ticket_is_skipped_with_a_fresh_ticket_for_the_next(gateway, signer,
                                                                                    registry):
    async with StubWorker("w-elsewhere") as wrong, StubWorker("w1") as good:
        # w0's address answers as another worker: the ticket (bound to w0) gets a 403 on the upgrade
        await registry.register("w0", f"ws://127.0.0.1:{wrong.port}", capacity=10)
        await registry.register("w1", f"ws://127.0.0.1:{good.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await ws.send(media(0))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        assert wrong.tickets_ok == [False] and CALL not in wrong.received
        assert good.tickets_ok == [True]
        workers = {w.worker_id: w for w in await registry.list_workers()}
        assert workers["w0"].active_calls == 0 and workers["w1"].active_calls == 1
        await ws.close()


def _relayed(direction: str) -> float:
    return metrics.FRAMES_RELAYED.labels(direction=direction)._value.get()


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def test_stop_ends_the_call_on_both_sides_and_frames_are_counted(gateway, signer, registry):
    inbound, outbound = _relayed("inbound"), _relayed("outbound")
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        for seq in range(20):
            await ws.send(media(seq))
        for _ in range(20):
            await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"event": "stop", "streamSid": STREAM, "stop": {"callSid": CALL}}))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == 1000
        await asyncio.wait_for(worker.closed[CALL].wait(), 5)
        assert json.loads(worker.received[CALL][-1])["event"] == "stop"
        # counters are flushed in batches, and at the latest when the call ends
        await _wait_for(lambda: _relayed("inbound") - inbound == 21 and _relayed("outbound") - outbound == 20)
        await _wait_for(lambda: worker.connections[CALL].state.name != "OPEN")


async def test_worker_ending_the_call_closes_twilios_side_normally(gateway, signer, registry):
    async with StubWorker("w1") as worker, StubWorker("w2") as spare:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        await registry.register("w2", f"ws://127.0.0.1:{spare.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await ws.send(media(0))
        await asyncio.wait_for(ws.recv(), 5)
        owner = worker if CALL in worker.connections else spare
        await owner.connections[CALL].close(1000, "bot hung up")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd.code == 1000
        assert CALL not in (spare if owner is worker else worker).received  # no re-attach


async def test_frames_sent_after_the_worker_died_reach_the_new_worker(gateway, signer, registry):
    async with StubWorker("w1") as first, StubWorker("w2") as second:
        await registry.register("w1", f"ws://127.0.0.1:{first.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        await ws.send(connected())
        await ws.send(start())
        await ws.send(media(0))
        await asyncio.wait_for(ws.recv(), 5)
        await registry.register("w2", f"ws://127.0.0.1:{second.port}", capacity=1)
        first.connections[CALL].transport.abort()
        await asyncio.sleep(0.2)  # what was in flight when the worker died is lost with it
        mark = json.dumps({"event": "mark", "streamSid": STREAM, "mark": {"name": "m1"}})
        await ws.send(mark)
        for seq in range(1, 40):
            await ws.send(media(seq))
            await asyncio.sleep(0.02)
            if len(second.received.get(CALL, [])) > 4:
                break
        received = second.received[CALL]
        assert received[:2] == [connected(), start()]
        assert mark in received  # sent while re-attaching or after: it reaches the new worker
        await ws.close()


class SlowWorker(StubWorker):
    """Takes half a second to accept a stream."""

    async def __aenter__(self) -> "SlowWorker":
        async def slow(conn, request):
            await asyncio.sleep(0.5)

        self._server = await serve(self._handler, "127.0.0.1", self.port, process_request=slow)
        return self


async def test_frames_sent_while_the_worker_is_attaching_arrive_in_order(gateway, signer, registry):
    async with SlowWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        ws = await open_stream(gateway, signer)
        sent = [connected(), start(), *(media(i) for i in range(5))]
        for text in sent:
            await ws.send(text)
        for _ in range(5):
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        assert worker.received[CALL] == sent
        await ws.close()


async def test_no_free_worker_plays_the_busy_message_and_ends_the_stream(gateway, signer, registry, twilio_rest,
                                                                         redis_url, redis_prefix):
    await registry.register("w1", "ws://127.0.0.1:9", capacity=0)  # full
    ws = await open_stream(gateway, signer)
    await ws.send(connected())
    await ws.send(start())
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd.code == 1000
    assert len(twilio_rest) == 1 and twilio_rest[0]["call_sid"] == CALL
    assert "all of our agents are busy" in twilio_rest[0]["Twiml"] and "<Hangup" in twilio_rest[0]["Twiml"]
    stored = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(RedisKeys(redis_prefix).call(CALL))
    assert stored["outcome"] == "rejected"
