"""The real twilio SDK against the emulator: create, fetch, list (paging), update, recordings, errors."""

from __future__ import annotations

import re
import time
import wave
from io import BytesIO

import httpx
import pytest
from emulator_fixtures import ACCOUNT_SID, AUTH_TOKEN, BotServer, Emulator
from twilio.base.exceptions import TwilioException, TwilioRestException

from voicebot_core.twilio_rest import call_is_gone

LONG_TWIML = '<Response><Pause length="20"/></Response>'


def _wait_status(emulator: Emulator, sid: str, status: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while emulator.report(sid)["status"] != status:
        assert time.monotonic() < deadline, emulator.report(sid)
        time.sleep(0.02)


def test_create_fetch_update_with_the_sdk(emulator: Emulator) -> None:
    client = emulator.sdk()
    call = client.calls.create(to="+15551110001", from_="+15550000000", twiml=LONG_TWIML)
    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert call.status == "queued" and call.direction == "outbound-api"
    assert call.to == "+15551110001" and call._from == "+15550000000" and call.account_sid == ACCOUNT_SID
    _wait_status(emulator, call.sid, "in-progress")
    fetched = client.calls(call.sid).fetch()
    assert fetched.status == "in-progress" and fetched.start_time is not None
    ended = client.calls(call.sid).update(status="completed")
    assert ended.status == "completed"
    fetched = client.calls(call.sid).fetch()
    assert fetched.status == "completed" and fetched.end_time is not None and fetched.duration is not None


def test_cancel_while_ringing(emulator: Emulator) -> None:
    emulator.configure({"+15551110009": {"answer": "no-answer"}})
    client = emulator.sdk()
    call = client.calls.create(to="+15551110009", from_="+15550000000", twiml=LONG_TWIML)
    _wait_status(emulator, call.sid, "ringing")
    assert client.calls(call.sid).update(status="canceled").status == "canceled"


def test_list_filters_and_pages_like_twilio(emulator: Emulator) -> None:
    client = emulator.sdk()
    sids = [client.calls.create(to="+15551110002", from_="+15550000000", twiml=LONG_TWIML).sid
            for _ in range(3)]
    listed = client.calls.list(to="+15551110002", page_size=2)  # the SDK follows next_page_uri
    assert [c.sid for c in listed] == list(reversed(sids))
    page = client.calls.page(to="+15551110002", page_size=2)
    second = page.next_page()
    assert len(list(page)) == 2 and len(list(second)) == 1 and second.next_page() is None
    for sid in sids:
        _wait_status(emulator, sid, "in-progress")
        client.calls(sid).update(status="completed")
    assert {c.sid for c in client.calls.list(to="+15551110002", status="completed")} == set(sids)
    assert client.calls.list(to="+15551110002", status="in-progress") == []


def test_wrong_credentials_get_401(emulator: Emulator) -> None:
    intruder = emulator.sdk(token="not-the-token")
    with pytest.raises(TwilioRestException) as info:
        intruder.calls.create(to="+15551110008", from_="+15550000000", twiml=LONG_TWIML)
    assert (info.value.status, info.value.code) == (401, 20003)
    with pytest.raises(TwilioException, match="401"):
        intruder.calls.list(limit=1)
    assert httpx.get(f"{emulator.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json").status_code == 401


def test_twilio_error_codes(emulator: Emulator) -> None:
    client = emulator.sdk()
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="12345", from_="+15550000000", twiml=LONG_TWIML)
    assert (info.value.status, info.value.code) == (400, 21211)
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="+15551110003", from_="+15550000000")
    assert (info.value.status, info.value.code) == (400, 21205)
    with pytest.raises(TwilioRestException) as info:
        client.calls("CA" + "0" * 32).fetch()
    assert (info.value.status, info.value.code) == (404, 20404) and call_is_gone(info.value)
    # raw body is Twilio's shape
    body = httpx.get(f"{emulator.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CAnope.json",
                     auth=(ACCOUNT_SID, AUTH_TOKEN)).json()
    assert set(body) == {"code", "message", "more_info", "status"} and body["code"] == 20404

    call = client.calls.create(to="+15551110004", from_="+15550000000", twiml="<Response><Hangup/></Response>")
    emulator.wait(call.sid)
    with pytest.raises(TwilioRestException) as info:
        client.calls(call.sid).update(twiml="<Response><Say>late</Say></Response>")
    assert (info.value.status, info.value.code) == (400, 21220) and call_is_gone(info.value)


@pytest.mark.parametrize("channels", ["mono", "dual"])
def test_recording_of_a_recorded_call(emulator: Emulator, channels: str) -> None:
    client = emulator.sdk()
    call = client.calls.create(to="+15551110005", from_="+15550000000", record=True, recording_channels=channels,
                               twiml="<Response><Say>this call is recorded</Say></Response>")
    report = emulator.wait(call.sid)
    assert report["status"] == "completed" and len(report["recordings"]) == 1
    recordings = client.calls(call.sid).recordings.list()
    assert [r.sid for r in recordings] == report["recordings"]
    recording = client.recordings(recordings[0].sid).fetch()
    assert recording.call_sid == call.sid and recording.channels == (2 if channels == "dual" else 1)
    assert recording.sid in {r.sid for r in client.recordings.list()}
    wav_bytes = httpx.get(f"{emulator.url}{recording.uri.replace('.json', '.wav')}",
                          auth=(ACCOUNT_SID, AUTH_TOKEN)).content
    with wave.open(BytesIO(wav_bytes)) as wav:
        assert wav.getframerate() == 8000 and wav.getnchannels() == recording.channels
        assert wav.getnframes() >= 8000 * 0.9  # the <Say> lasts about a second


def test_time_limit_and_url_redirect(emulator: Emulator, bot: BotServer) -> None:
    client = emulator.sdk()
    limited = client.calls.create(to="+15551110006", from_="+15550000000", twiml=LONG_TWIML, time_limit=1)
    report = emulator.wait(limited.sid)
    assert report["status"] == "completed" and any(e["event"] == "time-limit" for e in report["timeline"])
    assert report["timeline"][-1]["t"] < 3.0  # not the 20 s <Pause>

    call = client.calls.create(to="+15551110007", from_="+15550000000", twiml=LONG_TWIML)
    _wait_status(emulator, call.sid, "in-progress")
    bot.stream_parameters = {"direction": "outbound"}
    client.calls(call.sid).update(url=f"{bot.url}/voice", method="POST")
    bot.wait_for(lambda: bool(bot.messages("start")))
    (fetch,) = bot.of_kind("voice")
    assert fetch.signature_ok and fetch.data["CallSid"] == call.sid and fetch.data["CallStatus"] == "in-progress"
    client.calls(call.sid).update(status="completed")
    report = emulator.wait(call.sid)
    assert [v["verb"] for v in report["twiml"]] == ["Pause", "Connect"]
    assert bot.messages()[-1]["event"] == "stop"
