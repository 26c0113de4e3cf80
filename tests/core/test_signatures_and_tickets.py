import asyncio
import time

import pytest

from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.signatures import SignatureChecker, SignatureError, is_trusted_proxy, parse_proxies, public_url
from voicebot_core.tickets import TicketError, consume_ticket, issue_ticket, verify_ticket


def test_public_url_prefers_configured_base():
    url = public_url(request_url="http://10.0.0.5:8080/twilio/voice?x=1", headers={"host": "10.0.0.5:8080"},
                     public_base_url="https://calls.example.com")
    assert url == "https://calls.example.com/twilio/voice?x=1"


def test_public_url_from_forwarded_headers_and_websocket_scheme():
    headers = {"x-forwarded-proto": "https", "x-forwarded-host": "calls.example.com", "host": "gw:8080"}
    assert public_url(request_url="http://gw:8080/twilio/voice", headers=headers,
                      public_base_url=None, trust_forwarded=True) == "https://calls.example.com/twilio/voice"
    assert public_url(request_url="ws://gw:8080/twilio/stream/CA1", headers=headers, public_base_url=None,
                      websocket=True, trust_forwarded=True) == "wss://calls.example.com/twilio/stream/CA1"
    # not from a trusted proxy: the headers are ignored
    assert public_url(request_url="http://gw:8080/twilio/voice", headers=headers,
                      public_base_url=None) == "http://gw:8080/twilio/voice"
    assert public_url(request_url="ws://gw:8080/twilio/stream/CA1", headers=headers, public_base_url=None,
                      websocket=True) == "ws://gw:8080/twilio/stream/CA1"


def test_trusted_proxies_are_addresses_and_networks():
    assert is_trusted_proxy("10.1.2.3", "10.0.0.0/8, 192.168.1.7")
    assert is_trusted_proxy("192.168.1.7", "10.0.0.0/8, 192.168.1.7")
    assert is_trusted_proxy("::1", "::1")
    assert not is_trusted_proxy("192.168.1.8", "10.0.0.0/8, 192.168.1.7")
    assert not is_trusted_proxy("127.0.0.1", "")
    assert not is_trusted_proxy(None, "127.0.0.1")
    assert not is_trusted_proxy("testclient", "127.0.0.1")
    with pytest.raises(ValueError, match=r"ingress\.local"):
        parse_proxies("10.0.0.1, ingress.local")
    with pytest.raises(ValueError, match=r"10\.0\.0\.1/8"):
        parse_proxies("10.0.0.1/8")  # host bits set: uvicorn would not read it as a network either


def test_signature_round_trip_and_rejections():
    checker = SignatureChecker("token")
    params = {"CallSid": "CA1", "From": "+15550001111"}
    sig = checker.sign("https://h/twilio/voice", params)
    checker.check("https://h/twilio/voice", params, sig)
    with pytest.raises(SignatureError, match="missing"):
        checker.check("https://h/twilio/voice", params, None)
    with pytest.raises(SignatureError, match="does not match"):
        checker.check("https://h/twilio/voice", {**params, "From": "+15559999999"}, sig)
    with pytest.raises(SignatureError):
        SignatureChecker("other").check("https://h/twilio/voice", params, sig)


def test_ticket_binds_call_worker_and_time(monkeypatch):
    ticket = issue_ticket("s", "CA1", "w1", ttl_s=5)
    verify_ticket("s", ticket, "CA1", "w1")
    for call, worker, secret in (("CA2", "w1", "s"), ("CA1", "w2", "s"), ("CA1", "w1", "x")):
        with pytest.raises(TicketError):
            verify_ticket(secret, ticket, call, worker)
    monkeypatch.setattr(time, "time", lambda: 10**10)
    with pytest.raises(TicketError, match="expired"):
        verify_ticket("s", ticket, "CA1", "w1")
    with pytest.raises(TicketError):
        verify_ticket("s", None, "CA1", "w1")


def test_every_ticket_has_its_own_nonce_under_the_signature():
    first, second = issue_ticket("s", "CA1", "w1"), issue_ticket("s", "CA1", "w1")
    assert first != second  # same call, worker and second: still two tickets
    assert verify_ticket("s", first, "CA1", "w1").nonce != verify_ticket("s", second, "CA1", "w1").nonce
    expires, nonce, mac = first.split(".")
    other_nonce = verify_ticket("s", second, "CA1", "w1").nonce
    for forged in (f"{expires}.{other_nonce}.{mac}", f"{int(expires) + 60}.{nonce}.{mac}", f"{expires}.{mac}",
                   f"{expires}.{nonce}x.{mac}", "x.y.z", ""):
        with pytest.raises(TicketError):
            verify_ticket("s", forged, "CA1", "w1")


@pytest.fixture
async def redis(redis_url):
    client = connect(redis_url)
    yield client
    await client.aclose()


async def test_a_ticket_is_consumed_once_and_its_nonce_expires_with_it(redis, redis_prefix):
    keys = RedisKeys(redis_prefix)
    ticket = issue_ticket("s", "CA1", "w1", ttl_s=30)
    taken = await consume_ticket(redis, keys, "s", ticket, "CA1", "w1")
    assert await redis.get(keys.ticket(taken.nonce)) == "CA1"
    assert 28_000 < await redis.pttl(keys.ticket(taken.nonce)) <= 30_000  # the ticket's remaining lifetime
    with pytest.raises(TicketError, match="already used"):
        await consume_ticket(redis, keys, "s", ticket, "CA1", "w1")
    # a fresh ticket for the same call and worker is a new one
    await consume_ticket(redis, keys, "s", issue_ticket("s", "CA1", "w1"), "CA1", "w1")


async def test_concurrent_uses_of_one_ticket_let_exactly_one_through(redis, redis_prefix):
    keys = RedisKeys(redis_prefix)
    ticket = issue_ticket("s", "CA1", "w1")
    results = await asyncio.gather(*(consume_ticket(redis, keys, "s", ticket, "CA1", "w1") for _ in range(10)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, TicketError) for r in results if isinstance(r, Exception))


async def test_a_bad_ticket_is_refused_without_touching_redis(redis, redis_prefix):
    keys = RedisKeys(redis_prefix)
    for ticket, call, worker in ((issue_ticket("other", "CA1", "w1"), "CA1", "w1"),
                                 (issue_ticket("s", "CA2", "w1"), "CA1", "w1"),
                                 (issue_ticket("s", "CA1", "w1", ttl_s=-1), "CA1", "w1")):
        with pytest.raises(TicketError):
            await consume_ticket(redis, keys, "s", ticket, call, worker)
    assert not await redis.keys(keys.ticket("*"))
