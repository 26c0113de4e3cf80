"""IncomingPhoneNumbers through the real twilio SDK against the emulator: list with the PhoneNumber
filter, fetch, update the voice webhook and status callback, buy and release; an inbound call to a
number then fetches its TwiML from the number's VoiceUrl with the number's method."""

from __future__ import annotations

import re

import pytest
from emulator_fixtures import ACCOUNT_SID, BotServer, Emulator
from twilio.base.exceptions import TwilioException, TwilioRestException

SEEDED = "+15550100001"  # EmulatorSettings.emulator_incoming_numbers


def test_list_filters_by_phone_number_like_twilio(emulator: Emulator) -> None:
    client = emulator.sdk()
    every = [n.phone_number for n in client.incoming_phone_numbers.list()]
    assert SEEDED in every and "+15550100000" in every
    [number] = client.incoming_phone_numbers.list(phone_number=SEEDED)
    assert re.fullmatch(r"PN[0-9a-f]{32}", number.sid)
    assert number.account_sid == ACCOUNT_SID and number.capabilities["voice"] is True
    assert number.friendly_name == "(555) 010-0001"
    # partial numbers and `*` for one digit match, as on Twilio
    assert {n.phone_number for n in client.incoming_phone_numbers.list(phone_number="555010000*")} >= {
        "+15550100000", SEEDED, "+15550100002"}
    assert client.incoming_phone_numbers.list(phone_number="+19990000000") == []


def test_fetch_and_update_the_voice_webhook(emulator: Emulator) -> None:
    client = emulator.sdk()
    number = client.incoming_phone_numbers.create(phone_number="+15550166666")  # not the shared seeded ones
    updated = client.incoming_phone_numbers(number.sid).update(
        voice_url="https://example.test/twilio/voice?agent_profile=sales", voice_method="POST",
        status_callback="https://example.test/twilio/status", status_callback_method="POST")
    assert updated.voice_url == "https://example.test/twilio/voice?agent_profile=sales"
    assert updated.status_callback == "https://example.test/twilio/status"
    fetched = client.incoming_phone_numbers(number.sid).fetch()
    assert (fetched.voice_url, fetched.voice_method, fetched.status_callback_method) == (
        updated.voice_url, "POST", "POST")
    with pytest.raises(TwilioRestException) as bad_method:
        client.incoming_phone_numbers(number.sid).update(voice_method="PUT")
    assert bad_method.value.status == 400
    with pytest.raises(TwilioRestException) as bad_url:
        client.incoming_phone_numbers(number.sid).update(voice_url="ftp://nowhere")
    assert bad_url.value.code == 21502
    client.incoming_phone_numbers(number.sid).delete()


def test_unknown_sid_wrong_token_and_buy_release(emulator: Emulator) -> None:
    client = emulator.sdk()
    with pytest.raises(TwilioRestException) as missing:
        client.incoming_phone_numbers("PN" + "0" * 32).fetch()
    assert missing.value.status == 404 and missing.value.code == 20404
    with pytest.raises(TwilioException, match="20003"):  # a list answers the SDK's page error
        emulator.sdk(token="not-the-token").incoming_phone_numbers.list()
    bought = client.incoming_phone_numbers.create(phone_number="+15550177777")
    assert [n.sid for n in client.incoming_phone_numbers.list(phone_number="+15550177777")] == [bought.sid]
    assert client.incoming_phone_numbers(bought.sid).delete() is True
    assert client.incoming_phone_numbers.list(phone_number="+15550177777") == []


def test_inbound_call_uses_the_numbers_voice_url_and_method(emulator: Emulator, bot: BotServer) -> None:
    client = emulator.sdk()
    number = client.incoming_phone_numbers.create(phone_number="+15550188888")
    client.incoming_phone_numbers(number.sid).update(
        voice_url=f"{bot.url}/voice?agent_profile=fake-three-turns", voice_method="POST",
        status_callback=f"{bot.url}/status", status_callback_method="POST")
    hang_up = {"name": "hang-up", "steps": [{"hangup": {}}]}
    sid = emulator.place_inbound(**{"from": "+15550001111", "to": "+15550188888", "script": hang_up})
    bot.wait_for(lambda: bot.of_kind("voice"), timeout=10)
    emulator.wait(sid, timeout=30)
    [voice] = bot.of_kind("voice")
    assert voice.signature_ok and voice.data["To"] == "+15550188888"  # signed over the URL with its query
    bot.wait_for(lambda: bot.of_kind("status"), timeout=10)
    assert bot.of_kind("status")[-1].data["CallStatus"] == "completed"
    report = emulator.report(sid)
    incoming = next(e for e in report["timeline"] if e["event"] == "incoming")
    assert incoming["detail"]["voice_url"].endswith("/voice?agent_profile=fake-three-turns")
    client.incoming_phone_numbers(number.sid).delete()
