"""A worker slot the dialer holds for an outbound call goes to that call's stream, not to an inbound call."""

import asyncio
import json
import time

import redis
from gateway.busy_message import assert_busy_once, busy_updates
from gateway.twilio_frames import CALL, connected, media, open_stream, start, start_call

from helpers.stub_worker import StubWorker
from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.capacity import CapacityGate

OUTBOUND_CALL = "CA" + "d" * 32


async def test_an_inbound_call_cannot_take_the_slot_held_for_an_outbound_call(gateway, signer, registry,
                                                                              twilio_rest, redis_url, redis_prefix):
    async with StubWorker("w1") as worker:
        await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
        # the dialer places the outbound call only with a slot for it, and holds that slot while it rings
        with redis.Redis.from_url(redis_url, decode_responses=True) as client:
            gate = CapacityGate(client, RedisKeys(redis_prefix))
            assert gate.reserve("dj1", time.time()) == 1
            assert not gate.has_worker_room()

        inbound = await start_call(gateway, signer, CALL)
        await assert_busy_once(inbound, twilio_rest, CALL)
        assert CALL not in worker.connections

        outbound = await open_stream(gateway, signer, call_sid=OUTBOUND_CALL)
        await outbound.send(connected())
        await outbound.send(start(OUTBOUND_CALL, {"direction": "outbound", "dial_job_id": "dj1"}))
        await outbound.send(media(0))
        assert json.loads(await asyncio.wait_for(outbound.recv(), 5))["event"] == "media"
        assert worker.tickets_ok == [True] and OUTBOUND_CALL in worker.connections
        assert busy_updates(twilio_rest, OUTBOUND_CALL) == []
        await outbound.close()
