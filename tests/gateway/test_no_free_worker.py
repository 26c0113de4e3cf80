"""Every way a call can end up with no worker ends in the busy message, said once through Twilio's REST API."""

import asyncio
import json
from http import HTTPStatus

import pytest
import redis
from gateway.busy_message import assert_busy_once, busy_updates
from gateway.twilio_frames import CALL, connected, media, start, start_call
from websockets.asyncio.server import serve

from helpers.stub_worker import StubWorker
from voicebot_core.redis_keys import RedisKeys

# every path against both media paths: the byte-level relay and the FastAPI route
pytestmark = pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)

OTHER_CALL = "CA" + "c" * 32


class ClosingWorker(StubWorker):
    """Accepts the stream (ticket checked), then closes it with `code`: at once, or once it has read
    `connected` and `start` as the real worker does when it is full or draining."""

    def __init__(self, worker_id: str, code: int, after_start: bool) -> None:
        super().__init__(worker_id)
        self.code = code
        self.after_start = after_start

    async def _handler(self, conn) -> None:
        call_sid = conn.request.path.rsplit("/", 1)[-1]
        self.connections[call_sid] = conn
        if self.after_start:
            for _ in range(2):
                self.received.setdefault(call_sid, []).append(await conn.recv())
        await conn.close(self.code, "worker is full")


class UnavailableWorker(StubWorker):
    """Answers the upgrade with HTTP 503 (as a worker's server that is shutting down)."""

    async def __aenter__(self) -> "UnavailableWorker":
        def unavailable(conn, request):
            self.tickets_ok.append(False)
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")

        self._server = await serve(self._handler, "127.0.0.1", self.port, process_request=unavailable)
        return self


def call_record(redis_url: str, redis_prefix: str, call_sid: str = CALL) -> tuple[dict, list[str]]:
    """The call's hash and the kinds of its events."""
    keys = RedisKeys(redis_prefix)
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        events = [json.loads(e)["kind"] for e in client.lrange(keys.call_events(call_sid), 0, -1)]
        return client.hgetall(keys.call(call_sid)), events


async def test_an_empty_registry_gets_the_busy_message(gateway, signer, twilio_rest, redis_url, redis_prefix):
    ws = await start_call(gateway, signer)
    await assert_busy_once(ws, twilio_rest)
    record, events = call_record(redis_url, redis_prefix)
    assert record["outcome"] == "rejected" and events.count("no-capacity") == 1


async def test_only_draining_workers_get_the_busy_message(gateway, signer, registry, twilio_rest):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=4)
        await registry.set_draining("w1")
        ws = await start_call(gateway, signer)
        await assert_busy_once(ws, twilio_rest)
        assert worker.tickets_ok == []  # never tried


async def test_the_call_losing_the_race_for_the_last_slot_gets_the_busy_message(gateway, signer, registry,
                                                                               twilio_rest):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        streams = dict(zip((CALL, OTHER_CALL), await asyncio.gather(
            start_call(gateway, signer, CALL), start_call(gateway, signer, OTHER_CALL)), strict=True))
        for _ in range(250):  # both reservations made: one call attached, the other told busy
            if worker.connections and any(busy_updates(twilio_rest, sid) for sid in streams):
                break
            await asyncio.sleep(0.02)
        [winner] = worker.connections
        [loser] = set(streams) - {winner}
        await assert_busy_once(streams[loser], twilio_rest, loser)
        assert busy_updates(twilio_rest, winner) == []
        await streams[winner].send(media(0))
        assert json.loads(await asyncio.wait_for(streams[winner].recv(), 5))["event"] == "media"
        await streams[winner].close()


@pytest.mark.parametrize("refusal", ["403", "503"])
async def test_a_worker_refusing_the_upgrade_with_no_other_free_gets_the_busy_message(
        gateway, signer, registry, twilio_rest, refusal):
    # 403: the address answers as another worker, so the ticket (bound to w1) is refused
    stub = StubWorker("w-elsewhere") if refusal == "403" else UnavailableWorker("w1")
    async with stub:
        await registry.register("w1", f"ws://127.0.0.1:{stub.port}", capacity=4)
        ws = await start_call(gateway, signer)
        await assert_busy_once(ws, twilio_rest)
        assert stub.tickets_ok == [False]
        assert (await registry.list_workers())[0].active_calls == 0


@pytest.mark.parametrize("code", [1013, 1011])
@pytest.mark.parametrize("after_start", [False, True], ids=["before-start", "after-start"])
async def test_a_worker_accepting_then_closing_with_no_other_free_gets_the_busy_message(
        gateway, signer, registry, twilio_rest, redis_url, redis_prefix, code, after_start):
    async with ClosingWorker("w1", code, after_start) as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=4)
        ws = await start_call(gateway, signer)
        await assert_busy_once(ws, twilio_rest)
        assert worker.tickets_ok == [True]  # tried once, not again after it closed
        assert (await registry.list_workers())[0].active_calls == 0
        _, events = call_record(redis_url, redis_prefix)
        assert ("worker-refused" in events) == (code == 1013)


async def test_a_worker_closing_with_1013_makes_the_gateway_try_another_first(gateway, signer, registry, twilio_rest,
                                                                             redis_url, redis_prefix):
    async with ClosingWorker("w1", 1013, after_start=True) as full, StubWorker("w2") as good:
        await registry.register("w1", f"ws://127.0.0.1:{full.port}", capacity=10)  # most free: tried first
        await registry.register("w2", f"ws://127.0.0.1:{good.port}", capacity=1)
        ws = await start_call(gateway, signer)
        for _ in range(250):
            if CALL in good.received:
                break
            await asyncio.sleep(0.02)
        await ws.send(media(0))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
        assert full.tickets_ok == [True] and good.received[CALL][:2] == [connected(), start()]
        assert busy_updates(twilio_rest) == []
        record, events = call_record(redis_url, redis_prefix)
        assert record["worker_id"] == "w2" and "worker-refused" in events
        await ws.close()


async def test_1013_closes_count_against_the_worker_attempts_then_the_busy_message(gateway, signer, registry,
                                                                                  twilio_rest):
    async with (ClosingWorker("w1", 1013, after_start=True) as w1, ClosingWorker("w2", 1013, after_start=False) as w2,
                UnavailableWorker("w3") as w3, StubWorker("w4") as w4):
        # most free slots first: w1, w2 and w3 use up the three attempts (gateway_worker_attempts) before w4
        for capacity, stub in ((40, w1), (30, w2), (20, w3), (10, w4)):
            await registry.register(stub.worker_id, f"ws://127.0.0.1:{stub.port}", capacity=capacity)
        ws = await start_call(gateway, signer)
        await assert_busy_once(ws, twilio_rest)
        assert (w1.tickets_ok, w2.tickets_ok, w3.tickets_ok, w4.tickets_ok) == ([True], [True], [False], [])


async def test_a_re_attach_finding_no_worker_after_one_died_gets_the_busy_message(gateway, signer, registry,
                                                                                 twilio_rest, redis_url, redis_prefix):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        ws = await start_call(gateway, signer)
        await ws.send(media(0))
        await asyncio.wait_for(ws.recv(), 5)
        worker.connections[CALL].transport.abort()  # like kill -9: no close frame
        await assert_busy_once(ws, twilio_rest)
        record, events = call_record(redis_url, redis_prefix)
        assert record["outcome"] == "failed" and "failover-failed" in events
