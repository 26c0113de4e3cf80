"""Property-based tests (hypothesis) of the Twilio webhooks against a real gateway and Redis.

Arbitrary form bodies (Twilio's fields with random values, random keys, oversized values, bytes that
are not UTF-8, percent-encoded or raw) to the voice and status webhooks, signed as Twilio signs them
and unsigned or forged: never a 5xx; a signed one is answered (or refused with a 4xx that names the
body's fault) and stored; an unsigned or forged one is refused with 403 (or with the 400/413 the
body earns before its signature can be checked) and leaves every Redis key of the test's prefix as
it was (compared with DUMP, before and after).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import redis
from hypothesis import event, example, given
from hypothesis import strategies as st

from helpers.fuzzing import NETWORK
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker

PATHS = ["/twilio/voice", "/twilio/status"]
MAX_BODY = 64 * 1024  # GatewaySettings.gateway_max_body_bytes' default, which the fixture keeps
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}
TWILIO_FIELDS = ["CallSid", "AccountSid", "From", "To", "CallStatus", "Direction", "CallDuration", "AnsweredBy",
                 "Caller", "Called", "ApiVersion"]
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

call_sids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map("CA".__add__)
values = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=24),  # percent-encoded raw bytes: %FF and the like (the gateway reads U+FFFD)
    st.sampled_from(["ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled", "",
                     "+15550001111", "client:alice", "sip:bob@example.com", "anonymous", " ", "\t"]),
    call_sids,
)
oversized = st.integers(MAX_BODY - 200, MAX_BODY + 2000).map(lambda n: "x" * n)  # around the body limit
twilio_forms = st.fixed_dictionaries(
    {"CallSid": st.one_of(call_sids, call_sids, call_sids, values)},  # mostly a real-looking one
    optional={name: values for name in ["From", "To", "CallStatus", "AccountSid", "Direction"]},
)


@st.composite
def forms(draw) -> dict:
    form = {**draw(st.dictionaries(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=12), values, max_size=4)),
            **draw(twilio_forms)}
    if draw(st.integers(0, 9)) == 0:
        del form["CallSid"]
    if draw(st.integers(0, 7)) == 0:
        form[draw(st.sampled_from(["Junk", "From", "CallStatus"]))] = draw(oversized)
    return form


def _body(form: dict) -> tuple[bytes, dict[str, str]]:
    """The urlencoded body and the form the gateway reads from it (what Twilio signs)."""
    body = urlencode(list(form.items())).encode("ascii")
    return body, dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))


def _snapshot(r: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Every key of the test's prefix with its serialized value: equal snapshots, nothing written."""
    return {key: r.dump(key) for key in sorted(r.scan_iter(f"{prefix}:*", count=1000))}


@pytest.fixture
def client(gateway):
    with httpx.Client(base_url=gateway, timeout=15) as c:
        yield c


@pytest.fixture
def store(redis_url):
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def _check_signed(response: httpx.Response, path: str, form: dict[str, str], body_size: int,
                  store: redis.Redis, keys: RedisKeys) -> None:
    event(f"signed: {response.status_code}")
    assert response.status_code < 500, response.text
    call_sid = form.get("CallSid", "").strip()
    if body_size > MAX_BODY:
        assert response.status_code == 413, response.text
    elif not call_sid:
        assert response.status_code == 400 and "CallSid" in response.json()["detail"], response.text
    elif path == "/twilio/voice":
        assert response.status_code == 200, response.text
        assert store.exists(keys.call(call_sid)) and store.exists(keys.call_events(call_sid))
        if not any(XML_ILLEGAL.search(v) for v in (form.get("From", ""), form.get("To", ""))):
            stream = ET.fromstring(response.text).find("./Connect/Stream")  # TwiML, whatever the values
            params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
            assert (params["from"], params["to"]) == (form.get("From", ""), form.get("To", ""))
    else:
        assert response.status_code == 204, response.text
        assert store.exists(keys.call_events(call_sid))


@NETWORK
@given(form=forms(), path=st.sampled_from(PATHS))
@example(form={"CallSid": "CA" + "1" * 32, "From": "\u00e9\u20ac\U0001f600", "To": "<Hangup/>"}, path=PATHS[0])
@example(form={"CallSid": "CA1", "CallStatus": b"\xff\xfe"}, path=PATHS[1])
def test_signed_webhooks_are_answered_or_refused_with_a_4xx(gateway, client, signer, store, redis_prefix, form, path):
    body, read = _body(form)
    signature = signer.sign(f"{gateway}{path}", read)
    response = client.post(path, content=body, headers={**FORM_TYPE, SIGNATURE_HEADER: signature})
    _check_signed(response, path, read, len(body), store, RedisKeys(redis_prefix))


FORGERIES = ["missing", "garbage", "other_token", "other_url", "other_form"]


def _forged_signature(kind: str, garbage: str, url: str, path: str, read: dict[str, str], signer) -> str | None:
    if kind == "missing":
        return None
    if kind == "garbage":
        return garbage
    if kind == "other_token":
        return SignatureChecker("another-accounts-auth-token").sign(url, read)
    if kind == "other_url":
        return signer.sign(f"https://calls.example.com{path}", read)
    return signer.sign(url, {**read, "CallSid": read.get("CallSid", "") + "x"})  # another form


@NETWORK
@given(form=forms(), path=st.sampled_from(PATHS), kind=st.sampled_from(FORGERIES),
       garbage=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=44))
@example(form={"CallSid": "CA" + "3" * 32, "CallStatus": "completed"}, path=PATHS[1], kind="other_token", garbage="")
@example(form={"CallSid": "CA" + "4" * 32, "From": "+15550001111"}, path=PATHS[0], kind="other_token", garbage="")
def test_unsigned_or_forged_webhooks_are_refused_and_store_nothing(gateway, client, signer, store, redis_prefix,
                                                                   form, path, kind, garbage):
    body, read = _body(form)
    url = f"{gateway}{path}"
    # the same body signed first, so that the keys a forgery could touch exist
    signed = client.post(path, content=body, headers={**FORM_TYPE, SIGNATURE_HEADER: signer.sign(url, read)})
    assert signed.status_code < 500, signed.text
    before = _snapshot(store, redis_prefix)
    signature = _forged_signature(kind, garbage, url, path, read, signer)
    headers = {**FORM_TYPE, **({SIGNATURE_HEADER: signature} if signature is not None else {})}
    response = client.post(path, content=body, headers=headers)
    event(f"{kind}: {response.status_code}")
    if len(body) > MAX_BODY:
        assert response.status_code == 413, response.text  # refused before its signature is read
    else:
        assert response.status_code == 403, response.text
    assert _snapshot(store, redis_prefix) == before


@NETWORK
@given(body=st.binary(max_size=300), path=st.sampled_from(PATHS), sign=st.booleans())
@example(body=b"CallSid=CA1&From=%2B1555\xff\xfe", path=PATHS[0], sign=False)
@example(body=b"CallSid=CA1&CallStatus=completed", path=PATHS[1], sign=True)
def test_raw_bodies_are_never_a_server_error(gateway, client, signer, store, redis_prefix, body, path, sign):
    """Any bytes at all: not UTF-8 is a 400 before anything else; signed UTF-8 goes as a form would."""
    before = _snapshot(store, redis_prefix)
    headers = dict(FORM_TYPE)
    try:
        read = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        read = None
    if sign and read is not None:
        headers[SIGNATURE_HEADER] = signer.sign(f"{gateway}{path}", read)
    response = client.post(path, content=body, headers=headers)
    event(f"raw {'signed' if SIGNATURE_HEADER in headers else 'unsigned'}: {response.status_code}")
    assert response.status_code < 500, response.text
    if read is None:
        assert response.status_code == 400 and "UTF-8" in response.json()["detail"], response.text
    elif sign:
        _check_signed(response, path, read, len(body), store, RedisKeys(redis_prefix))
        return
    else:
        assert response.status_code == 403, response.text
    assert _snapshot(store, redis_prefix) == before


def test_twiml_stays_well_formed_with_control_characters_in_the_form(gateway, client, signer):
    form = {"CallSid": "CA" + "2" * 32, "From": "+1555\x01", "To": "+15550002222"}
    body, read = _body(form)
    response = client.post("/twilio/voice", content=body,
                           headers={**FORM_TYPE, SIGNATURE_HEADER: signer.sign(f"{gateway}/twilio/voice", read)})
    assert response.status_code == 200
    ET.fromstring(response.text)
