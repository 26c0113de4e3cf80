"""The worker's stream upgrade: a ticket is checked and used up before the WebSocket is accepted."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.exceptions import InvalidStatus

from helpers.constants import WORKER_TICKET_SECRET as TICKET_SECRET
from helpers.twilio_peer import TwilioPeer
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.tickets import TICKET_HEADER, issue_ticket


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


async def upgrade(base: str, call_sid: str, ticket: str | None) -> websockets.ClientConnection:
    """The upgrade request as the gateway sends it (ticket in the header)."""
    headers = {TICKET_HEADER: ticket} if ticket is not None else {}
    return await websockets.connect(f"{base}/streams/{call_sid}", additional_headers=headers, open_timeout=5)


async def assert_refused_before_accept(base: str, call_sid: str, ticket: str | None) -> None:
    """HTTP 403 in answer to the upgrade: no 101, so no WebSocket was ever accepted."""
    with pytest.raises(InvalidStatus) as refused:
        await upgrade(base, call_sid, ticket)
    assert refused.value.response.status_code == 403


async def live_calls(base: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(base.replace("ws://", "http://") + "/readyz")).json()["calls"]


async def test_forged_expired_or_other_calls_tickets_are_refused_with_403_before_accept(
        worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory()
    call_sid = new_call_sid()
    worker = settings.worker_id
    bad = {
        "forged": issue_ticket("not-the-secret", call_sid, worker),
        "expired": issue_ticket(TICKET_SECRET, call_sid, worker, ttl_s=-1),
        "another call sid": issue_ticket(TICKET_SECRET, new_call_sid(), worker),
        "another worker": issue_ticket(TICKET_SECRET, call_sid, "w-other"),
        "malformed": "12.34",
        "missing": None,
    }
    for ticket in bad.values():
        await assert_refused_before_accept(base, call_sid, ticket)
    assert await live_calls(base) == 0
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    assert not await redis.keys(RedisKeys(redis_prefix).ticket("*")), "a bad ticket uses up nothing"
    await redis.aclose()


async def test_a_valid_ticket_opens_the_stream_once_and_a_replay_is_refused_before_accept(
        worker_factory, redis_url, redis_prefix):
    base, settings = worker_factory(worker_capacity=2)
    call_sid = new_call_sid()
    ticket = issue_ticket(TICKET_SECRET, call_sid, settings.worker_id)
    peer = TwilioPeer(f"{base}/streams/{call_sid}?ticket={ticket}", call_sid,
                      custom_parameters={"direction": "inbound", "from": "+15550001111", "to": "+15550002222",
                                         "agent_profile": "fake-three-turns"})
    await peer.connect()
    try:
        await peer.wait_for(lambda: peer.log.events("media"), timeout=15)  # the valid ticket works
        redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        used = await redis.keys(RedisKeys(redis_prefix).ticket("*"))
        assert len(used) == 1 and await redis.get(used[0]) == call_sid
        assert 0 < await redis.pttl(used[0]) <= 30_000  # gone with the ticket
        await redis.aclose()
        # the same ticket again, while its call is live: refused during the upgrade
        await assert_refused_before_accept(base, call_sid, ticket)
        assert not peer.closed.is_set() and await live_calls(base) == 1
    finally:
        await peer.close()
    await asyncio.wait_for(peer.closed.wait(), 5)
    # and after the call ended
    await assert_refused_before_accept(base, call_sid, ticket)


async def test_one_ticket_sent_twice_at_once_opens_one_stream(worker_factory):
    base, settings = worker_factory(worker_capacity=4)
    call_sid = new_call_sid()
    ticket = issue_ticket(TICKET_SECRET, call_sid, settings.worker_id)
    results = await asyncio.gather(*(upgrade(base, call_sid, ticket) for _ in range(4)), return_exceptions=True)
    opened = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InvalidStatus)]
    assert len(opened) == 1 and len(refused) == 3, results
    assert all(r.response.status_code == 403 for r in refused)
    for conn in opened:
        await conn.close()
