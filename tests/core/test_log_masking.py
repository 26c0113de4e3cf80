"""Log masking: phone numbers masked, identifiers (SIDs, job ids, trace ids) and dates left whole, so
that logs can still be searched by call. (Span attributes use the same mask_phone:
tests/observability/test_telemetry_propagation.py.)"""

from __future__ import annotations

import io
import json
import logging

import pytest

from voicebot_core import logs
from voicebot_core.logs import mask_field, mask_phone

IDENTIFIERS = {
    "call": "CAcd5396ebb730462aa4c623953503e0",  # the one the issue saw mangled
    "call, digits": "CA15551234567012345678901234567a",
    "stream": "MZ55512345670123456789abcdef0123",
    "account": "AC0123456789abcdef0123456789abcdef",
    "phone number sid": "PN5551234567" + "0" * 22,
    "recording": "RE" + "1" * 32,
    "dial job": "dj_5551234567abcdef0123",
    "32 hex": "15551234567abcdef0123456789abcde",
    "32 digits": "15551234567" + "1" * 21,
    "trace id": "0af7651916cd43dd8448eb211c80319c",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
}
URLS = [
    "POST Request: http://127.0.0.1:18060/2010-04-01/Accounts/{id}/Calls.json",
    "POST Request: https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls/{id}.json",
    "GET /streams/{id}?ticket=eyJ0.1764489600.{id}",
    "wss://gateway.example/twilio/stream/{id}",
    "/v1/calls/{id}/recording?after=1764489600000-0",
]
FREE_TEXT = [
    "call {id} ended: completed",
    "{id}: stream started",
    "(job {id}) placed, attempt 2",
    "worker w-1 took {id}, 3 calls",
    "ids={id},{id}",
    '{{"call_sid": "{id}", "event": "start"}}',
]


@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("template", URLS + FREE_TEXT)
def test_identifiers_stay_whole_in_urls_and_free_text(identifier, template):
    text = template.format(id=identifier)
    assert mask_phone(text) == text


@pytest.mark.parametrize("text", [
    "POST Request: http://127.0.0.1:18060/2010-04-01/Accounts/AC01234567890123456789abcdef6789/Calls.json",
    "Date : Mon, 30 Nov 2026 11:11:31 GMT",
    "at 2026-11-30T11:11:31.123Z, from=2026-11-30&to=2026-12-01",
    "connecting to: 10.42.13.117 port 8000",
    "events after 1764489600000-0, page of 500",
    "User-Agent : twilio-python/9.3.7 (Linux x86_64) Python/3.11.7",
    "frame of 70002 bytes exceeds the 65536-byte limit",
    "version 1.2.3, offset +0100, +30 ms",
])
def test_other_numbers_stay_whole(text):
    assert mask_phone(text) == text


@pytest.mark.parametrize(("text", "masked"), [
    ("caller +15551234567 said hi", "caller +1555***4567 said hi"),
    ("call me back on +1 555 123 4567 please", "call me back on +1 55***4567 please"),
    ("dial +1-555-123-4567.", "dial +1-55***4567."),
    ("+44 (20) 7946 0958", "+44 (***0958"),
    ("To=%2B15551234567&From=%2B15557654321", "To=%2B1555***4567&From=%2B1555***4321"),
    ("Query Params: {'To': '+15551234567', 'From': '5557654321'}",
     "Query Params: {'To': '+1555***4567', 'From': '555***4321'}"),
    ('{"to": "5551234567", "transfer_number": "07700 900123"}',
     '{"to": "555***4567", "transfer_number": "077***0123"}'),
    ("transfer to: 555-123-4567", "transfer to: 555***4567"),
    ("my number is (555) 123-4567, or 555.765.4321", "my number is (55***4567, or 555***4321"),
    ("my number is 5551234567.", "my number is 555***4567."),
])
def test_numbers_are_masked(text, masked):
    assert mask_phone(text) == masked
    assert "1234567" not in masked.replace(" ", "").replace("-", "")


def test_a_number_next_to_an_identifier_is_masked_and_the_identifier_kept():
    sid = "CA0123456789abcdef0123456789abcdef"
    assert mask_phone(f"{sid} To=+15551234567 Url=/twilio/stream/{sid}") == (
        f"{sid} To=+1555***4567 Url=/twilio/stream/{sid}")


def test_structured_fields():
    assert mask_field("to", "5551234567") == "555***4567"
    assert mask_field("From", 15551234567) == "155***4567"
    assert mask_field("call_sid", "CA0123456789abcdef0123456789abcdef") == "CA0123456789abcdef0123456789abcdef"
    assert mask_field("job", {"to": "+15551234567", "dial_job_id": "dj_5551234567ab", "attempt": 12345678,
                              "numbers": ["+15557654321", "5557654321"], "note": "call 555-123-4567"}) == {
        "to": "+1555***4567", "dial_job_id": "dj_5551234567ab", "attempt": 12345678,
        "numbers": ["+1555***4321", "555***4321"], "note": "call 555***4567"}


def _json_lines(emit, mask: bool = True) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("gateway", mask_numbers=mask))
    logger = logging.getLogger("test.core.log_masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_mask_message_and_extra_fields():
    sid = "CA5551234567abcdef0123456789abcd"

    def emit(logger):
        logger.info("placing %s", json.dumps({"to": "+1 555 123 4567", "from": "555-765-4321"}),
                    extra={"call_sid": sid, "to": "5551234567", "job": {"from": "+15557654321", "id": "dj_1"},
                           "attempt": 2, "stream_sid": "MZ" + "5551234567" * 3 + "ab"})

    (line,) = _json_lines(emit)
    assert line["msg"] == 'placing {"to": "+1 55***4567", "from": "555***4321"}'
    assert line["call_sid"] == sid and line["stream_sid"] == "MZ" + "5551234567" * 3 + "ab"
    assert line["to"] == "555***4567" and line["job"] == {"from": "+1555***4321", "id": "dj_1"}
    assert line["attempt"] == 2
    unmasked = _json_lines(emit, mask=False)[0]
    assert unmasked["to"] == "5551234567" and "+1 555 123 4567" in unmasked["msg"]


def test_exception_text_is_masked():
    def emit(logger):
        try:
            raise ValueError("The 'To' number +15551234567 is not a valid phone number. (call CA" + "5" * 32 + ")")
        except ValueError:
            logger.exception("Twilio call update failed")

    (line,) = _json_lines(emit)
    assert "+1555***4567 is not a valid" in line["exc"] and "CA" + "5" * 32 in line["exc"]
    assert "+15551234567" in _json_lines(emit, mask=False)[0]["exc"]


def test_twilio_http_client_request_lines_keep_the_url_and_mask_the_numbers():
    from twilio.http.http_client import TwilioHttpClient

    account = "AC0123456789abcdef0123456789abcdef"
    url = f"http://127.0.0.1:18060/2010-04-01/Accounts/{account}/Calls.json"

    def emit(logger):
        TwilioHttpClient(logger=logger).log_request({
            "method": "POST", "url": url, "params": {"To": "+15551234567", "From": "+15557654321"},
            "headers": {"User-Agent": "twilio-python/9.3.7 (Linux x86_64) Python/3.11.7",
                        "Authorization": "Basic c2VjcmV0"}})

    text = "\n".join(line["msg"] for line in _json_lines(emit))
    assert f"POST Request: {url}?To=%2B1555***4567&From=%2B1555***4321" in text
    assert "'To': '+1555***4567', 'From': '+1555***4321'" in text
    assert "twilio-python/9.3.7 (Linux x86_64) Python/3.11.7" in text
    assert "5551234567" not in text and "5557654321" not in text


def test_a_call_can_be_found_in_the_logs_by_its_full_sid():
    sid = "CAcd5396ebb730462aa4c623953503e0"
    other = "CA" + "1" * 32

    def emit(logger):
        logger.info("POST Request: http://127.0.0.1:18060/2010-04-01/Accounts/AC%s/Calls/%s.json", "0" * 32, sid)
        logger.info("stream upgrade /twilio/stream/%s from +15551234567", sid)
        logger.info("caller said hi", extra={"call_sid": sid})
        logger.info("call %s placed to 555-123-4567", other)
        logger.info("worker for /streams/%s?ticket=1764489600.%s", sid, sid)

    lines = _json_lines(emit)
    found = [line for line in lines if sid in json.dumps(line)]
    assert len(found) == 4
    assert all("5551234567" not in json.dumps(line) for line in lines)
