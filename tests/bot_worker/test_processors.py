"""The speech monitor puts a Twilio mark behind every spoken chunk, in a real pipecat pipeline."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.utils.text.base_text_aggregator import TextType

from voicebot_worker.interruption import InterruptionFence
from voicebot_worker.marks import MarkTracker
from voicebot_worker.processors import SpeechIntentTap, SpeechMonitor


class NoEvents:
    def __getattr__(self, name):
        return lambda *args: None


def marks(frames) -> list[str]:
    return [f.message["mark"]["name"] for f in frames if isinstance(f, OutputTransportMessageFrame)]


def text(value: str, text_type: TextType, context_id: str = "c1") -> TTSTextFrame:
    frame = TTSTextFrame(value, text_type=text_type)
    frame.context_id = context_id
    return frame


async def test_a_mark_follows_each_sentence():
    tracker = MarkTracker()
    down, _ = await run_test(SpeechMonitor(tracker, "MZ1", NoEvents()), frames_to_send=[
        text("Hello there.", TextType.SENTENCE), text("How are you?", TextType.SENTENCE),
        TTSStoppedFrame(context_id="c1")])
    names = marks(down)
    assert len(names) == 2
    positions = [i for i, f in enumerate(down) if isinstance(f, OutputTransportMessageFrame)]
    assert all(isinstance(down[i - 1], TTSTextFrame) for i in positions)  # each right behind its text
    [utterance] = tracker.utterances
    assert [c.text for c in utterance.chunks] == ["Hello there.", "How are you?"] and utterance.closed


async def test_word_timestamped_tts_gets_one_mark_per_utterance():
    tracker = MarkTracker()
    down, _ = await run_test(SpeechMonitor(tracker, "MZ1", NoEvents()), frames_to_send=[
        text("Hello", TextType.WORD), text("there.", TextType.WORD), TTSStoppedFrame(context_id="c1")])
    assert len(marks(down)) == 1
    assert tracker.utterances[0].text == "Hello there."


async def test_intent_tap_records_spoken_prompts():
    tracker = MarkTracker()
    await run_test(SpeechIntentTap(tracker), frames_to_send=[TTSSpeakFrame("Are you still there?")])
    tracker.chunk_spoken("ctx", "Are you still there?")
    assert tracker.utterances[0].intent.text == "Are you still there?"


async def test_reply_frames_created_before_an_interruption_are_dropped_after_it():
    """A sentence the TTS pushed before the interruption but that reached the monitor after it (its
    input queue lets the InterruptionFrame overtake) neither gets a mark nor goes on to the output."""
    tracker = MarkTracker()

    def frames():
        yield text("We open at nine.", TextType.SENTENCE, "c1")
        stale = [TTSAudioRawFrame(b"\x00\x01" * 160, 8000, 1, context_id="c1"),
                 text("On Sundays we are closed.", TextType.SENTENCE, "c1")]
        yield SleepFrame(0.05)
        yield InterruptionFrame()
        yield SleepFrame(0.05)
        yield from stale  # made before the interruption, arriving after it
        yield text("Of course.", TextType.SENTENCE, "c2")  # the next reply

    down, _ = await run_test(SpeechMonitor(tracker, "MZ1", NoEvents()), frames_to_send=frames())
    assert [f.text for f in down if isinstance(f, TTSTextFrame)] == ["We open at nine.", "Of course."]
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)
    assert len(marks(down)) == 2
    assert [[c.text for c in u.chunks] for u in tracker.utterances] == [["We open at nine."], ["Of course."]]


def test_the_fence_spares_uninterruptible_frames_and_frames_made_after_it():
    fence = InterruptionFence()
    before, kept = TTSAudioRawFrame(b"\x00\x00", 8000, 1), TTSAudioRawFrame(b"\x00\x00", 8000, 1)
    kept.interruptible = False
    fence.interrupt()
    after = TTSAudioRawFrame(b"\x00\x00", 8000, 1)
    assert fence.is_stale(before) and not fence.is_stale(kept) and not fence.is_stale(after)
    assert not fence.is_stale(InterruptionFrame())  # only reply frames (audio, marks, text)


class SentenceBurst(FrameProcessor):
    """Like pipecat's TTS audio-context task: pushes a whole sentence of audio from its own task, at once."""

    def __init__(self) -> None:
        super().__init__(name="sentence-burst")
        self.go = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSStartedFrame):
            self.create_task(self._burst(frame.context_id))
        await self.push_frame(frame, direction)

    async def _burst(self, context_id: str | None) -> None:
        await self.go.wait()
        for _ in range(50):  # 1 s of audio, no await that yields in between
            await self.push_frame(TTSAudioRawFrame(b"\x01\x00" * 160, 8000, 1, context_id=context_id))


async def test_an_interruption_overtaking_a_burst_of_audio_does_not_let_it_through():
    """The root cause of bot audio after a `clear`: the interruption reaches the monitor's input queue
    right behind a sentence of audio and, being a SystemFrame, is taken first; pipecat then drops the
    monitor's *process* queue, but that audio is still in the input queue and used to go on after it."""
    burst, tracker = SentenceBurst(), MarkTracker()
    pipeline = Pipeline([burst, SpeechMonitor(tracker, "MZ1", NoEvents())])

    def frames():
        yield TTSStartedFrame(context_id="c1")
        yield SleepFrame(0.05)
        burst.go.set()  # the burst runs first, then the burst processor's input task takes the interruption
        yield InterruptionFrame()

    down, _ = await run_test(pipeline, frames_to_send=frames())
    interruption = next(i for i, f in enumerate(down) if isinstance(f, InterruptionFrame))
    assert not [f for f in down[interruption:] if isinstance(f, TTSAudioRawFrame)]
