"""Two gateways behind haproxy on loopback (StackConfig.gateways): round-robin sends a call's webhook to
one gateway and its media stream to the other, and the call works, because everything the stream needs
is in Redis or in its URL (the call SID), not in the memory of the gateway that answered the webhook."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import redis

from helpers.constants import TEST_PROFILES_PATH
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.load_balancer import haproxy_binary
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_devstack.turns import turn_latencies

pytestmark = pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed (make deps installs it)")

THREE_TURNS = "+15557000001"  # fake-three-turns in the test profiles
ONE_TURN = {"name": "one-turn", "voice": "formant", "steps": [
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}}, {"say": "I would like to check my order status"},
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}}, {"hangup": {}}]}


@pytest.fixture
def stack(tmp_path, redis_url):
    stack = Stack(StackConfig(run_dir=tmp_path, workers=1, worker_capacity=2, profiles_path=TEST_PROFILES_PATH,
                              redis_prefix=f"devstack-lb-{time.time_ns()}", gateways=2))
    try:
        yield stack.start()
    finally:
        stack.stop()


def _served_by(stack: Stack, request: str) -> list[str]:
    """The gateways haproxy sent requests starting with `request` to, in order (its log)."""
    log = (stack.config.run_dir / "logs" / "load-balancer.log").read_text(errors="replace")
    return re.findall(rf'gateways/(\S+) \d+ "{re.escape(request)}', log)


def test_a_calls_webhook_and_stream_on_different_gateways(stack):
    assert {"gateway-0", "gateway-1"} <= set(stack.processes)
    emulator = httpx.Client(base_url=stack.urls["emulator"], timeout=60)
    sid = emulator.post("/emulator/calls", json={"from": "+15550001111", "to": THREE_TURNS, "script": ONE_TURN}
                        ).raise_for_status().json()["call_sid"]
    emulator.get(f"/emulator/calls/{sid}/wait", params={"timeout": 45})
    report = emulator.get(f"/emulator/calls/{sid}").json()

    webhook, stream = _served_by(stack, "POST /twilio/voice"), _served_by(stack, f"GET /twilio/stream/{sid}")
    assert len(webhook) == 1 and len(stream) == 1 and webhook != stream, (webhook, stream)
    assert report["status"] == "completed" and not report.get("error"), report
    assert [t.latency_s is not None for t in turn_latencies(report)] == [True], "the caller's turn was answered"
    record = redis.Redis.from_url(stack.redis_url, decode_responses=True).hgetall(
        RedisKeys(stack.config.redis_prefix).call(sid))
    assert record["outcome"] == "completed", record
