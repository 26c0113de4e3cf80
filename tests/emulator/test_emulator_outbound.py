"""Outbound calls: per-number outcomes, signed status callbacks in order, machine detection."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from emulator_fixtures import ACCOUNT_SID, BotServer, Emulator
from fastapi import WebSocket

from voicebot_core import audio

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def _dial(emulator: Emulator, bot: BotServer, to: str, **extra: object) -> str:
    call = emulator.sdk().calls.create(
        to=to, from_="+15550000000", url=f"{bot.url}/voice", status_callback=f"{bot.url}/status",
        status_callback_event=ALL_EVENTS, **extra)
    return call.sid


def _callbacks(bot: BotServer, sid: str) -> list[dict[str, str]]:
    entries = bot.of_kind("status")
    assert all(e.signature_ok for e in entries), "a status callback was not signed correctly"
    assert all(e.data["CallSid"] == sid for e in entries)
    return [e.data for e in entries]


def _statuses(callbacks: list[dict[str, str]]) -> list[str]:
    return [c["CallStatus"] for c in callbacks]


def test_busy_number(emulator: Emulator, bot: BotServer) -> None:
    emulator.configure({"+15552220001": {"answer": "busy"}})
    sid = _dial(emulator, bot, "+15552220001")
    report = emulator.wait(sid)
    assert report["status"] == "busy"
    callbacks = _callbacks(bot, sid)
    assert _statuses(callbacks) == ["initiated", "ringing", "busy"]
    assert [c["SequenceNumber"] for c in callbacks] == ["0", "1", "2"]
    assert all(c["CallbackSource"] == "call-progress-events" and c["AccountSid"] == ACCOUNT_SID for c in callbacks)
    assert callbacks[-1]["CallDuration"] == "0" and callbacks[-1]["Direction"] == "outbound-api"
    assert not bot.of_kind("voice")  # never answered: no TwiML fetch


def test_no_answer_and_failed_numbers(emulator: Emulator, bot: BotServer) -> None:
    emulator.configure({"+15552220002": {"answer": "no-answer"}, "+15552220003": {"answer": "fail"}})
    no_answer = _dial(emulator, bot, "+15552220002")
    failed = _dial(emulator, bot, "+15552220003")
    assert emulator.wait(failed)["status"] == "failed"
    report = emulator.wait(no_answer)
    assert report["status"] == "no-answer"
    ringing = next(e["t"] for e in report["timeline"] if e["event"] == "initiated")
    assert report["timeline"][-1]["t"] - ringing >= emulator.settings.emulator_no_answer_seconds - 0.05
    by_call: dict[str, list[str]] = {}
    for entry in bot.of_kind("status"):
        assert entry.signature_ok
        by_call.setdefault(entry.data["CallSid"], []).append(entry.data["CallStatus"])
    assert by_call == {no_answer: ["initiated", "ringing", "no-answer"], failed: ["initiated", "failed"]}


def test_human_with_machine_detection_gets_the_stream(emulator: Emulator, bot: BotServer) -> None:
    emulator.configure({"+15552220004": {"answer": "human",
                                         "script": {"steps": [{"say": "hello?"}, {"hangup": {}}]}}})
    bot.stream_parameters = {"direction": "outbound", "dial_job_id": "job-1"}
    sid = _dial(emulator, bot, "+15552220004", machine_detection="Enable")
    report = emulator.wait(sid)
    assert report["status"] == "completed" and report["answered_by"] == "human", report
    (voice,) = bot.of_kind("voice")
    assert voice.signature_ok
    assert voice.data["AnsweredBy"] == "human" and voice.data["CallStatus"] == "in-progress"
    assert voice.data["Direction"] == "outbound-api" and voice.data["To"] == "+15552220004"
    callbacks = _callbacks(bot, sid)
    assert _statuses(callbacks) == ["initiated", "ringing", "in-progress", "completed"]
    assert int(callbacks[-1]["CallDuration"]) >= 1
    assert bot.messages("start")[0]["start"]["customParameters"] == {"direction": "outbound", "dial_job_id": "job-1"}
    assert [s["text"] for s in report["said"]] == ["hello?"]


def test_voicemail_with_async_amd_plays_greeting_then_reports_the_beep(emulator: Emulator, bot: BotServer) -> None:
    emulator.configure({"+15552220005": {"answer": "voicemail", "greeting_s": 1.0}})

    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        await bot.until(lambda: bool(bot.of_kind("amd")), timeout=10)
        await asyncio.sleep(0.2)

    bot.behaviour = behaviour
    sid = _dial(emulator, bot, "+15552220005", machine_detection="DetectMessageEnd", async_amd="true",
                async_amd_status_callback=f"{bot.url}/amd")
    report = emulator.wait(sid)
    assert bot.stream_done.wait(5)
    assert report["status"] == "completed" and report["answered_by"] == "machine_end_beep"
    (amd,) = bot.of_kind("amd")
    assert amd.signature_ok and amd.data["AnsweredBy"] == "machine_end_beep" and amd.data["CallSid"] == sid
    (voice,) = bot.of_kind("voice")
    assert "AnsweredBy" not in voice.data  # async AMD: the TwiML fetch does not wait for it
    answered = next(e for e in bot.of_kind("status") if e.data["CallStatus"] == "in-progress")
    assert amd.t - answered.t >= 1.0 + 0.5 - 0.05  # greeting + beep
    # the greeting and the beep were on the line
    sent = b"".join(base64.b64decode(m["media"]["payload"]) for m in bot.messages("media"))
    loud = np.abs(audio.mulaw_to_pcm16(sent).astype(np.int32)) > 1000
    assert loud.sum() > 0.5 * 8000


def test_voicemail_with_sync_amd_fetches_twiml_after_the_beep(emulator: Emulator, bot: BotServer) -> None:
    emulator.configure({"+15552220006": {"answer": "voicemail", "greeting_s": 0.8}})

    async def behaviour(ws: WebSocket, bot: BotServer) -> None:
        await bot.until(lambda: bool(bot.messages("start")))
        await asyncio.sleep(0.2)

    bot.behaviour = behaviour
    sid = _dial(emulator, bot, "+15552220006", machine_detection="DetectMessageEnd")
    report = emulator.wait(sid)
    assert report["status"] == "completed" and report["answered_by"] == "machine_end_beep"
    (voice,) = bot.of_kind("voice")
    assert voice.signature_ok and voice.data["AnsweredBy"] == "machine_end_beep"
    answered = next(e for e in bot.of_kind("status") if e.data["CallStatus"] == "in-progress")
    assert voice.t - answered.t >= 0.8 + 0.5 - 0.05
    completed = bot.of_kind("status")[-1].data
    assert completed["CallStatus"] == "completed" and completed["AnsweredBy"] == "machine_end_beep"
