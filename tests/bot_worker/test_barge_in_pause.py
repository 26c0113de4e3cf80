"""The barge-in pause: what the phone has not played is taken back on pause and sent again, in order,
marks included, when the speech was a backchannel; an interruption sends none of it."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import Frame, OutputAudioRawFrame

from voicebot_core import metrics
from voicebot_worker.barge_in_pause import OutputPause, PlayoutLog, mark_name
from voicebot_worker.serializer import mark_frame

RATE = 8000


def pauses_ended(outcome: str) -> float:
    return metrics.BARGE_IN_PAUSES.labels(outcome=outcome)._value.get()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chunk(index: int, seconds: float = 0.04) -> OutputAudioRawFrame:
    return OutputAudioRawFrame(audio=bytes([index]) * int(seconds * RATE) * 2, sample_rate=RATE, num_channels=1)


def label(frame: Frame) -> str:
    name = mark_name(frame)
    return f"mark:{name}" if name is not None else f"audio:{frame.audio[0]}"


def test_the_log_takes_back_what_the_phone_has_not_played_from_the_chunk_playing_now():
    clock = Clock()
    log = PlayoutLog(clock)
    for index in range(5):  # 0.2 s of audio sent at once (the output writes ahead of playback)
        log.sent(chunk(index))
    log.sent(mark_frame("MZ1", "u1-c1"))
    clock.now += 0.05  # chunk 0 played, chunk 1 playing
    assert log.audible()
    assert [label(f) for f in log.take_unplayed()] == ["audio:1", "audio:2", "audio:3", "audio:4", "mark:u1-c1"]
    assert not log.audible() and log.take_unplayed() == []


def test_a_mark_after_audio_already_played_is_not_taken_back():
    clock = Clock()
    log = PlayoutLog(clock)
    log.sent(chunk(0))
    log.sent(mark_frame("MZ1", "u1-c1"))
    clock.now += 0.1
    log.sent(chunk(1))
    clock.now += 0.01
    assert [label(f) for f in log.take_unplayed()] == ["audio:1"]


class Phone:
    """The output's side effects: a `clear`, and each frame written (again)."""

    def __init__(self, log: PlayoutLog) -> None:
        self.log = log
        self.written: list[str] = []
        self.paused_marks: list[list[str]] = []

    async def clear(self) -> None:
        self.written.append("clear")

    async def resend(self, frame: Frame) -> bool:
        self.written.append(label(frame))
        self.log.sent(frame)
        return True

    def pause(self, **timing: float) -> OutputPause:
        return OutputPause(self.log, self.clear, self.resend, self.paused_marks.append, **timing)


async def test_a_backchannel_pause_sends_the_taken_back_audio_again_then_lets_the_output_write():
    clock = Clock()
    log = PlayoutLog(clock)
    phone = Phone(log)
    pause = phone.pause(grace_s=0.05, max_s=5)
    for index in range(3):
        log.sent(chunk(index))
    log.sent(mark_frame("MZ1", "u1-c1"))
    resumed, interrupted = pauses_ended("resumed"), pauses_ended("interrupted")
    assert pause.pause()
    assert pause.paused and phone.paused_marks == [["u1-c1"]]
    writer = asyncio.create_task(pause.wait())  # the output's next write
    await asyncio.sleep(0.02)
    assert phone.written == ["clear"] and not writer.done()
    pause.resume_soon()
    await asyncio.wait_for(writer, 1)
    assert phone.written == ["clear", "audio:0", "audio:1", "audio:2", "mark:u1-c1"]
    assert not pause.paused and pause.pauses == 1
    assert (pauses_ended("resumed"), pauses_ended("interrupted")) == (resumed + 1, interrupted)


async def test_voice_again_within_the_grace_keeps_the_bot_paused():
    log = PlayoutLog(Clock())
    phone = Phone(log)
    pause = phone.pause(grace_s=0.05, max_s=5)
    log.sent(chunk(0))
    assert pause.pause()
    pause.resume_soon()  # "wait," ...
    await asyncio.sleep(0.02)
    assert not pause.pause()  # ... "one more question": the same pause goes on
    await asyncio.sleep(0.1)
    assert pause.paused and phone.written == ["clear"]
    pause.close()


async def test_an_interruption_sends_nothing_taken_back_and_frees_the_output():
    log = PlayoutLog(Clock())
    phone = Phone(log)
    pause = phone.pause(grace_s=0.05, max_s=5)
    log.sent(chunk(0))
    log.sent(mark_frame("MZ1", "u1-c1"))
    resumed, interrupted = pauses_ended("resumed"), pauses_ended("interrupted")
    assert pause.pause()
    writer = asyncio.create_task(pause.wait())
    pause.interrupted()
    await asyncio.wait_for(writer, 1)
    await asyncio.sleep(0.1)
    assert phone.written == ["clear"] and not pause.paused
    assert (pauses_ended("resumed"), pauses_ended("interrupted")) == (resumed, interrupted + 1)
    pause.interrupted()  # pipecat's interruption with no pause under way: not a pause's end
    assert pauses_ended("interrupted") == interrupted + 1


async def test_a_silent_bot_is_not_paused():
    clock = Clock()
    log = PlayoutLog(clock)
    pause = Phone(log).pause()
    assert not pause.pause()
    log.sent(chunk(0))
    clock.now += 0.5  # played out
    assert not pause.pause() and not pause.paused


async def test_a_pause_no_verdict_ends_lets_the_bot_go_on_after_its_limit():
    log = PlayoutLog(Clock())
    phone = Phone(log)
    pause = phone.pause(grace_s=5, max_s=0.05)
    log.sent(chunk(7))
    assert pause.pause()
    await asyncio.wait_for(pause.wait(), 1)
    assert phone.written == ["clear", "audio:7"]


def test_the_output_writes_until_the_phone_holds_the_lead_then_at_the_pace_of_playback():
    clock = Clock()
    log = PlayoutLog(clock)
    waits = []
    for index in range(8):  # 40 ms chunks, written as soon as the wait says
        log.sent(chunk(index))
        wait_s = log.ahead_of(0.2)
        waits.append(round(wait_s, 3))
        clock.now += wait_s
    assert waits == [0, 0, 0, 0, 0, 0.04, 0.04, 0.04]  # five chunks (0.2 s) at once, then one per 40 ms
    clock.now += 0.5  # the loop was busy: nothing to wait for, the phone played its lead meanwhile
    assert log.ahead_of(0.2) == 0
