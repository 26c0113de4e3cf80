"""SIGTERM to an idle gateway behind a load balancer: the balancer still sends it what it routed before
its health check saw /readyz fail. A stream arriving in that window (its webhook answered before) is
relayed to its end, not refused or closed with 1012 (VOICEBOT_GATEWAY_DRAIN_LINGER_S)."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
from gateway.gateway_process import gateway_process
from gateway.twilio_frames import media, start_call

from helpers.stub_worker import StubWorker
from voicebot_gateway.settings import GatewaySettings

LINGER_S = GatewaySettings.model_fields["gateway_drain_linger_s"].default  # the shipped default
LB_CHECK_S = 0.3  # the devstack's haproxy polls /readyz this often (voicebot_devstack.load_balancer)


async def test_a_stream_arriving_just_after_sigterm_is_relayed_to_its_end(tmp_path, redis_url, redis_prefix,
                                                                          profiles_path, registry, signer):
    assert LINGER_S > LB_CHECK_S
    with gateway_process(tmp_path / "gateway.log", redis_url, redis_prefix, profiles_path) as (url, gateway):
        async with StubWorker("w1") as worker:
            await registry.register("w1", f"ws://127.0.0.1:{worker.port}", capacity=1)
            gateway.signal(signal.SIGTERM)
            await asyncio.sleep(LB_CHECK_S * 2 / 3)  # the balancer has not polled /readyz yet
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{url}/readyz")).status_code == 503, "out of rotation at once"
            ws = await start_call(url, signer)
            started = time.monotonic()
            seq = 0
            while time.monotonic() - started < LINGER_S + 1.0:  # past the linger: the drain waits for it
                await ws.send(media(seq))
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "media"
                seq += 1
                await asyncio.sleep(0.02)
            assert gateway.proc.poll() is None, "the gateway waits for the stream"
            await ws.close()
        assert gateway.proc.wait(15) == 0, gateway.log_tail()
