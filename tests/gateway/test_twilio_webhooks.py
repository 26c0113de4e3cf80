import xml.etree.ElementTree as ET

import httpx
import pytest
import redis

from helpers.stub_worker import TICKET_SECRET
from voicebot_core.dial_jobs import encode_fields
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.tickets import outbound_url_token

FORM = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": "+15550001111",
        "To": "+15550003333", "CallStatus": "ringing", "Direction": "inbound"}


def _post(gateway, signer, path="/twilio/voice", form=FORM, signed_url=None, headers=None, signature=None):
    url = f"{gateway}{path}"
    sig = signature if signature is not None else signer.sign(signed_url or url, form)
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": sig, **(headers or {})})


def test_signed_inbound_webhook_answers_connect_stream(gateway, signer, redis_url, redis_prefix):
    response = _post(gateway, signer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    host = gateway.removeprefix("http://")
    assert stream.get("url") == f"ws://{host}/twilio/stream/{FORM['CallSid']}"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"direction": "inbound", "from": "+15550001111", "to": "+15550003333",
                      "agent_profile": "support"}
    call = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(
        RedisKeys(redis_prefix).call(FORM["CallSid"]))
    assert call["direction"] == "inbound" and call["agent_profile"] == "support"


def test_number_maps_to_its_agent_profile(gateway, signer):
    response = _post(gateway, signer, form={**FORM, "To": "+15550002222"})
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["agent_profile"] == "sales"


def test_forged_or_missing_signature_is_refused_and_nothing_starts(gateway, signer, redis_url, redis_prefix):
    forged = _post(gateway, signer, signature="bm90LWEtc2lnbmF0dXJl")
    assert forged.status_code == 403 and "does not match" in forged.json()["detail"]
    missing = httpx.post(f"{gateway}/twilio/voice", data=FORM)
    assert missing.status_code == 403 and "missing X-Twilio-Signature" in missing.json()["detail"]
    tampered = _post(gateway, signer, form={**FORM, "From": "+15559999999"},
                     signature=signer.sign(f"{gateway}/twilio/voice", FORM))
    assert tampered.status_code == 403
    assert not redis.Redis.from_url(redis_url).exists(RedisKeys(redis_prefix).call(FORM["CallSid"]))


@pytest.mark.parametrize("trusted_proxies", ["127.0.0.1"])  # the ingress's address (test_forwarded_headers.py)
def test_forwarded_host_is_the_signed_url_and_the_stream_host(gateway, signer):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "calls.example.com"}
    response = _post(gateway, signer, headers=headers, signed_url="https://calls.example.com/twilio/voice")
    assert response.status_code == 200, response.text
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream.get("url") == f"wss://calls.example.com/twilio/stream/{FORM['CallSid']}"
    # signed for the internal URL while the ingress says otherwise: refused
    assert _post(gateway, signer, headers=headers).status_code == 403


def test_oversized_and_malformed_bodies_get_clear_errors(gateway, signer):
    big = {**FORM, "Junk": "x" * 70_000}
    assert _post(gateway, signer, form=big).status_code == 413
    not_form = httpx.post(f"{gateway}/twilio/voice", content=b'{"CallSid": "CA1"}',
                          headers={"content-type": "application/json", "X-Twilio-Signature": "x"})
    assert not_form.status_code == 415
    no_sid = {k: v for k, v in FORM.items() if k != "CallSid"}
    assert _post(gateway, signer, form=no_sid).status_code == 400
    assert httpx.get(f"{gateway}/healthz").status_code == 200


def test_status_callback_is_stored_as_a_call_event(gateway, signer, redis_url, redis_prefix):
    form = {**FORM, "CallStatus": "completed", "CallDuration": "12"}
    assert _post(gateway, signer, path="/twilio/status", form=form).status_code == 204
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    events = r.lrange(keys.call_events(FORM["CallSid"]), 0, -1)
    assert any('"status": "completed"' in e for e in events)
    assert r.hget(keys.call(FORM["CallSid"]), "status") == "completed"
    assert _post(gateway, signer, path="/twilio/status", form=form, signature="AAAA").status_code == 403


def test_metrics_and_readiness(gateway, signer):
    _post(gateway, signer, signature="AAAA")
    body = httpx.get(f"{gateway}/metrics").text
    assert 'voicebot_rejected_signatures_total{endpoint="voice"}' in body
    assert httpx.get(f"{gateway}/readyz").status_code == 200


# outbound: the dialer's TwiML URL for an answered call -------------------------------------------
def _store_dial_job(redis_url: str, redis_prefix: str, **fields) -> str:
    """A dial job as the dialer writes it (the shared codec in voicebot_core.dial_jobs)."""
    job = {"id": "dj_" + "a" * 32, "state": "ringing", "to": "+15557000006", "from": "+15550002222",
           "agent_profile": "sales", "variables": {"name": "Sam"}, "overrides": {}, "attempt": 1,
           "machine_detection": "none", **fields}
    redis.Redis.from_url(redis_url).hset(RedisKeys(redis_prefix).dial_job(job["id"]), mapping=encode_fields(job))
    return job["id"]


def _post_outbound(gateway, signer, job_id: str, form: dict[str, str]):
    token = outbound_url_token(TICKET_SECRET, job_id, 1)
    return _post(gateway, signer, path=f"/twilio/outbound/{job_id}?attempt=1&token={token}", form=form)


OUTBOUND_FORM = {**FORM, "From": "+15550002222", "To": "+15557000006", "Direction": "outbound-api",
                 "CallStatus": "in-progress"}


def test_answered_outbound_call_streams_with_the_dial_job_parameters(gateway, signer, redis_url, redis_prefix):
    job_id = _store_dial_job(redis_url, redis_prefix)
    response = _post_outbound(gateway, signer, job_id, OUTBOUND_FORM)
    assert response.status_code == 200, response.text
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"direction": "outbound", "from": "+15550002222", "to": "+15557000006",
                      "agent_profile": "sales", "dial_job_id": job_id}
    call = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(
        RedisKeys(redis_prefix).call(FORM["CallSid"]))
    assert call["dial_job_id"] == job_id and call["direction"] == "outbound"


def test_machine_answer_leaves_the_voicemail_with_the_job_variables(gateway, signer, redis_url, redis_prefix):
    job_id = _store_dial_job(redis_url, redis_prefix, machine_detection="voicemail")
    response = _post_outbound(gateway, signer, job_id, {**OUTBOUND_FORM, "AnsweredBy": "machine_end_beep"})
    root = ET.fromstring(response.text)
    assert root.findtext("Say") == "Hi Sam, please call us back."
    assert root.find("Hangup") is not None and root.find("Connect") is None
    call = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(
        RedisKeys(redis_prefix).call(FORM["CallSid"]))
    assert call["outcome"] == "machine"


def test_machine_answer_with_hangup_policy_hangs_up_without_a_message(gateway, signer, redis_url, redis_prefix):
    job_id = _store_dial_job(redis_url, redis_prefix, machine_detection="hangup")
    root = ET.fromstring(_post_outbound(gateway, signer, job_id, {**OUTBOUND_FORM, "AnsweredBy": "fax"}).text)
    assert root.find("Say") is None and root.find("Hangup") is not None


def test_answer_for_a_finished_or_unknown_dial_job_hangs_up(gateway, signer, redis_url, redis_prefix):
    job_id = _store_dial_job(redis_url, redis_prefix, state="canceled")
    for target in (job_id, "dj_" + "b" * 32):
        root = ET.fromstring(_post_outbound(gateway, signer, target, OUTBOUND_FORM).text)
        assert root.find("Hangup") is not None and root.find("Connect") is None
