import time

import pytest

from voicebot_core.signatures import SignatureChecker, SignatureError, public_url
from voicebot_core.tickets import TicketError, issue_ticket, verify_ticket


def test_public_url_prefers_configured_base():
    url = public_url(request_url="http://10.0.0.5:8080/twilio/voice?x=1", headers={"host": "10.0.0.5:8080"},
                     public_base_url="https://calls.example.com")
    assert url == "https://calls.example.com/twilio/voice?x=1"


def test_public_url_from_forwarded_headers_and_websocket_scheme():
    headers = {"x-forwarded-proto": "https", "x-forwarded-host": "calls.example.com", "host": "gw:8080"}
    assert public_url(request_url="http://gw:8080/twilio/voice", headers=headers,
                      public_base_url=None) == "https://calls.example.com/twilio/voice"
    assert public_url(request_url="ws://gw:8080/twilio/stream/CA1", headers=headers, public_base_url=None,
                      websocket=True) == "wss://calls.example.com/twilio/stream/CA1"


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
