"""The simulated phone on the wire: signed webhook and upgrade, Media Streams messages, pacing,
marks, clear, dtmf, stop, and what happens after the stream ends."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time

import numpy as np
from emulator_fixtures import ACCOUNT_SID, BotServer, Emulator, heard_wav_path
from fastapi import WebSocket

from voicebot_core import audio
from voicebot_core.twilio_protocol import parse_frame
from voicebot_simulation import formant_voice

CALLER = {"from": "+15550001111", "to": "+15550002222"}


def _media(stream_sid: str, mulaw: bytes) -> str:
    return json.dumps({"event": "media", "streamSid": stream_sid,
                       "media": {"payload": base64.b64encode(mulaw).decode()}})


async def _send_audio(ws: WebSocket, stream_sid: str, mulaw: bytes, chunk: int = 1600) -> None:
    for offset in range(0, len(mulaw), chunk):  # 200 ms per message, sent at once like a TTS burst
        await ws.send_text(_media(stream_sid, mulaw[offset : offset + chunk]))


def _stream_sid(bot: BotServer) -> str:
    return bot.messages("start")[0]["streamSid"]


def test_inbound_call_is_signed_and_streams_twilio_frames_every_20ms(emulator: Emulator, bot: BotServer) -> None:
    bot.stream_parameters = {"direction": "inbound", "agent_profile": "demo"}
    sid = emulator.place_inbound(**CALLER, voice_url=f"{bot.url}/voice",
                                 script={"steps": [{"silence": 2.0}, {"hangup": {}}]})
    report = emulator.wait(sid)
    assert report["status"] == "completed" and report["direction"] == "inbound", report

    (voice,) = bot.of_kind("voice")
    assert voice.signature_ok
    assert voice.data["CallSid"] == sid and voice.data["AccountSid"] == ACCOUNT_SID
    assert voice.data["CallStatus"] == "ringing" and voice.data["Direction"] == "inbound"
    assert (voice.data["From"], voice.data["To"], voice.data["ApiVersion"]) == (*CALLER.values(), "2010-04-01")
    assert len(bot.of_kind("ws-open")) == 1 and not bot.of_kind("ws-rejected")  # signed upgrade

    messages = bot.messages()
    assert messages[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = messages[1]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    assert start["start"]["callSid"] == sid and start["start"]["accountSid"] == ACCOUNT_SID
    assert start["start"]["customParameters"] == {"direction": "inbound", "agent_profile": "demo"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert start["start"]["tracks"] == ["inbound"] and start["streamSid"].startswith("MZ")
    started = False
    for text in messages:  # our own strict parser accepts every frame
        frame = parse_frame(json.dumps(text), started=started)
        started = started or frame.event == "start"
    assert [int(m["sequenceNumber"]) for m in messages[1:]] == list(range(1, len(messages)))

    media = [r for r in bot.received if r.kind == "ws" and r.data["event"] == "media"]
    assert 95 <= len(media) <= 110  # 2 s of caller silence, 50 frames a second
    chunks = [int(r.data["media"]["chunk"]) for r in media]
    assert chunks == list(range(1, len(media) + 1))
    assert [int(r.data["media"]["timestamp"]) for r in media] == [20 * (c - 1) for c in chunks]
    payloads = {base64.b64decode(r.data["media"]["payload"]) for r in media}
    assert payloads == {b"\xff" * 160} and all(r.data["media"]["track"] == "inbound" for r in media)
    # pacing, measured on arrival in another thread of a busy machine: 20 ms apart on average with
    # no drift over the stream, and most frames within a few ms of the absolute 20 ms schedule
    arrivals = np.array([r.t for r in media])
    intervals = np.diff(arrivals) * 1000
    assert abs(statistics.mean(intervals) - 20.0) < 1.5, intervals
    assert statistics.median(np.abs(intervals - 20.0)) < 3.0, intervals
    offsets = (arrivals - 0.02 * np.arange(len(arrivals))) * 1000
    offsets -= np.median(offsets)
    assert np.mean(np.abs(offsets) < 10.0) > 0.8, offsets.round(1)

    stop = messages[-1]
    assert stop["event"] == "stop" and stop["streamSid"] == start["streamSid"]
    assert stop["stop"] == {"accountSid": ACCOUNT_SID, "callSid": sid}


def test_a_server_with_another_token_rejects_the_webhook(emulator: Emulator, other_account_bot: BotServer) -> None:
    sid = emulator.place_inbound(**CALLER, voice_url=f"{other_account_bot.url}/voice", script="listen")
    report = emulator.wait(sid)
    (voice,) = other_account_bot.of_kind("voice")
    assert not voice.signature_ok  # the check in our test server is real
    assert report["status"] == "failed" and "403" in report["error"]


def test_marks_echo_after_playout_and_at_once_on_clear(emulator: Emulator, bot: BotServer) -> None:
    greeting = audio.pcm16_to_mulaw(formant_voice.synthesize("hello, thanks for calling, how can I help")[:8000])

    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        await bot.until(lambda: bool(bot.messages("start")))
        stream_sid = _stream_sid(bot)
        await _send_audio(ws, stream_sid, greeting)  # exactly 1.0 s of speech
        await ws.send_text(json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": "first"}}))
        bot.notes["first_sent"] = time.monotonic()
        bot.notes["first_echo"] = await bot.until(lambda: len(bot.messages("mark")) == 1)
        await _send_audio(ws, stream_sid, greeting * 3)
        await ws.send_text(json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": "second"}}))
        await asyncio.sleep(0.5)
        bot.notes["clear_sent"] = time.monotonic()
        await ws.send_text(json.dumps({"event": "clear", "streamSid": stream_sid}))
        bot.notes["second_echo"] = await bot.until(lambda: len(bot.messages("mark")) == 2)
        await asyncio.sleep(0.3)

    bot.behaviour = behaviour
    sid = emulator.place_inbound(**CALLER, voice_url=f"{bot.url}/voice", script="listen")
    report = emulator.wait(sid)
    assert bot.stream_done.wait(5)
    assert report["status"] == "completed" and report["error"] is None, report
    marks = bot.messages("mark")
    assert [m["mark"]["name"] for m in marks] == ["first", "second"]
    assert all(m["streamSid"] == _stream_sid(bot) and m["sequenceNumber"] for m in marks)
    assert 0.97 <= bot.notes["first_echo"] - bot.notes["first_sent"] <= 1.15  # after 1 s of playout
    assert bot.notes["second_echo"] - bot.notes["clear_sent"] < 0.1  # at once on clear
    assert [m["cleared"] for m in report["marks"]] == [False, True] and len(report["clears"]) == 1
    # heard: 1 s of speech, then without a pause ~0.5 s more until the clear cut it
    (heard_segment,) = report["heard"]
    assert 1.4 <= heard_segment["end"] - heard_segment["start"] <= 1.7, heard_segment
    assert report["timeline"][-1]["event"] == "ended" and not bot.messages("stop")  # the server closed
    heard, rate = audio.read_wav(heard_wav_path(report))
    assert rate == 8000
    assert np.sum(np.abs(heard.astype(np.int32)) > 300) > 0.5 * 8000  # about 1.5 s of the greeting


def test_caller_speech_dtmf_play_and_wait_for_bot(emulator: Emulator, bot: BotServer, tmp_path) -> None:
    recorded = tmp_path / "recorded.wav"  # "real recorded audio": 16 kHz stereo, resampled on the way
    tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 16000) * 8000).astype(np.int16)
    audio.write_wav(recorded, np.stack([tone, tone], axis=1), 16000)
    greeting = audio.pcm16_to_mulaw(formant_voice.synthesize("hello, how can I help you today"))

    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        await bot.until(lambda: bool(bot.messages("start")))
        await _send_audio(ws, _stream_sid(bot), greeting)
        await bot.until(lambda: bool(bot.of_kind("ws-closed")), timeout=15)

    bot.behaviour = behaviour
    script = {"steps": [{"wait_for_bot": {"silence_s": 0.5, "timeout_s": 10}}, {"say": "check my order"},
                        {"dtmf": "1#"}, {"play": str(recorded)}, {"hangup": {}}]}
    sid = emulator.place_inbound(**CALLER, voice_url=f"{bot.url}/voice", script=script)
    report = emulator.wait(sid)
    assert report["status"] == "completed", report

    said, played = report["said"]
    (heard,) = report["heard"]
    assert played["play"] == str(recorded) and abs((played["end"] - played["start"]) - 0.5) < 0.06
    assert said["text"] == "check my order"
    assert said["start"] >= heard["end"] + 0.45  # waited for the greeting plus 0.5 s of silence
    sent = b"".join(base64.b64decode(m["media"]["payload"]) for m in bot.messages("media"))
    spoken = audio.pcm16_to_mulaw(formant_voice.synthesize("check my order"))
    assert spoken in sent  # bit-exact on the wire, frame-aligned
    assert sent.index(spoken) % 160 == 0
    dtmf = bot.messages("dtmf")
    assert [d["dtmf"] for d in dtmf] == [{"track": "inbound_track", "digit": "1"},
                                         {"track": "inbound_track", "digit": "#"}]
    assert [d["digit"] for d in report["dtmf"]] == ["1", "#"]
    tone_at_8k = audio.mulaw_to_pcm16(sent[-4000 - 160 * 10 :])  # the tail: tone, then silence frames
    assert np.abs(tone_at_8k.astype(np.int32)).max() > 6000
    assert bot.messages()[-1]["event"] == "stop"


def test_twiml_after_the_stream_runs_when_the_server_closes(emulator: Emulator, bot: BotServer) -> None:
    bot.twiml_after_stream = "<Say>goodbye</Say><Hangup/>"

    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        await bot.until(lambda: bool(bot.messages("start")))
        await asyncio.sleep(0.3)

    bot.behaviour = behaviour
    sid = emulator.place_inbound(**CALLER, voice_url=f"{bot.url}/voice", script="listen")
    report = emulator.wait(sid)
    assert report["status"] == "completed"
    assert [v["verb"] for v in report["twiml"]] == ["Connect", "Say", "Hangup"]
    assert report["heard"][-1]["source"] == "say" and report["heard"][-1]["text"] == "goodbye"
    assert not bot.messages("stop")


def test_rest_hangup_during_the_stream_sends_stop(emulator: Emulator, bot: BotServer) -> None:
    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        start = await bot.until(lambda: bool(bot.messages("start")))
        await asyncio.sleep(0.3)
        call_sid = bot.messages("start")[0]["start"]["callSid"]
        updated = await asyncio.to_thread(lambda: emulator.sdk().calls(call_sid).update(status="completed"))
        bot.notes["update_status"] = updated.status
        bot.notes["closed"] = await bot.until(lambda: bool(bot.of_kind("ws-closed"))) - start

    bot.behaviour = behaviour
    sid = emulator.place_inbound(**CALLER, voice_url=f"{bot.url}/voice", script="listen")
    report = emulator.wait(sid)
    assert bot.stream_done.wait(5)
    assert report["status"] == "completed" and bot.notes["update_status"] == "completed"
    assert bot.messages()[-1]["event"] == "stop"
    assert bot.notes["closed"] < 2.0


def test_redirect_during_the_stream_transfers_with_dial(emulator: Emulator, bot: BotServer) -> None:
    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        await bot.until(lambda: bool(bot.messages("start")))
        call_sid = bot.messages("start")[0]["start"]["callSid"]
        await asyncio.to_thread(lambda: emulator.sdk().calls(call_sid).update(
            twiml="<Response><Dial>+15557654321</Dial></Response>"))
        await bot.until(lambda: bool(bot.of_kind("ws-closed")))

    bot.behaviour = behaviour
    sid = emulator.place_inbound(**CALLER, voice_url=f"{bot.url}/voice", script="listen")
    report = emulator.wait(sid)
    assert report["status"] == "completed"
    assert report["twiml"][-1] == {"verb": "Dial", "number": "+15557654321"}
    assert bot.messages()[-1]["event"] == "stop"
    assert any(e["event"] == "transfer" for e in report["timeline"])
