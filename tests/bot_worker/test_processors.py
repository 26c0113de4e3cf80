"""The speech monitor puts a Twilio mark behind every spoken chunk, in a real pipecat pipeline."""

from __future__ import annotations

from pipecat.frames.frames import OutputTransportMessageFrame, TTSSpeakFrame, TTSStoppedFrame, TTSTextFrame
from pipecat.tests.utils import run_test
from pipecat.utils.text.base_text_aggregator import TextType

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
