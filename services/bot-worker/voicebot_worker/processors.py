"""Small pipeline processors that connect the call session to the frames it cares about."""

from __future__ import annotations

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    MetricsFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType

from voicebot_worker.events import CallEvents
from voicebot_worker.interruption import InterruptionFence
from voicebot_worker.marks import MarkTracker, SpeechIntent
from voicebot_worker.serializer import TwilioMarkFrame, TwilioStopFrame, mark_frame


class StreamEventsProcessor(FrameProcessor):
    """Right after transport.input(): consumes Twilio `mark` echoes and `stop`."""

    def __init__(self, events: CallEvents) -> None:
        super().__init__(name="stream-events")
        self._events = events

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TwilioMarkFrame):
            self._events.on_mark_echo(frame.mark_name)
        elif isinstance(frame, TwilioStopFrame):
            self._events.on_stream_stop()
        else:
            if isinstance(frame, InputDTMFFrame):
                self._events.on_dtmf(str(frame.button.value))
            await self.push_frame(frame, direction)


class SpeechIntentTap(FrameProcessor):
    """Between LLM and TTS: records what the bot means to say, before the TTS cuts it into
    sentences (an interrupted utterance keeps its intended text)."""

    def __init__(self, tracker: MarkTracker) -> None:
        super().__init__(name="speech-intents")
        self._tracker = tracker
        self._reply: SpeechIntent | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMFullResponseStartFrame):
                self._reply = self._tracker.add_intent()
            elif isinstance(frame, LLMTextFrame) and self._reply is not None:
                self._reply.text += frame.text
            elif isinstance(frame, LLMFullResponseEndFrame) and self._reply is not None:
                self._reply.complete = True
                if not self._reply.text.strip():
                    self._tracker.discard_intent(self._reply)
                self._reply = None
            elif isinstance(frame, TTSSpeakFrame):
                self._tracker.add_intent(frame.text, complete=True)
            elif isinstance(frame, InterruptionFrame):
                self._tracker.drop_unclaimed_intents()
                self._reply = None
        await self.push_frame(frame, direction)


class SpeechMonitor(FrameProcessor):
    """Between TTS and transport.output(): sends a Twilio `mark` behind every spoken chunk and
    reports bot speaking state, VAD stops and service metrics to the session. Frames of an
    interrupted reply that reach it after the interruption (interruption.py) are dropped, so they
    neither play nor count as spoken chunks."""

    def __init__(self, tracker: MarkTracker, stream_sid: str, events: CallEvents) -> None:
        super().__init__(name="speech-monitor")
        self._tracker = tracker
        self._stream_sid = stream_sid
        self._events = events
        # TTS services with word timestamps send one TTSTextFrame per word, timed for playback rather
        # than queued behind its audio; for them one mark per utterance, at its end.
        self._words: dict[str, list[str]] = {}
        self._fence = InterruptionFence()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction == FrameDirection.DOWNSTREAM and self._fence.is_stale(frame):
            return
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._fence.interrupt()
            for key in list(self._words):  # spoken words whose mark never went out: the clear cuts them
                self._tracker.chunk_spoken(key, " ".join(self._words.pop(key)))
        await self.push_frame(frame, direction)
        if isinstance(frame, TTSTextFrame) and direction == FrameDirection.DOWNSTREAM:
            key = frame.context_id or ""
            if frame.text_type == TextType.WORD:
                self._words.setdefault(key, []).append(frame.text)
            else:
                await self.push_frame(mark_frame(self._stream_sid, self._tracker.chunk_spoken(key, frame.text)))
        elif isinstance(frame, TTSStoppedFrame):
            words = self._words.pop(frame.context_id or "", None)
            if words:
                name = self._tracker.chunk_spoken(frame.context_id or "", " ".join(words))
                await self.push_frame(mark_frame(self._stream_sid, name))
            self._tracker.utterance_finished(frame.context_id)
        elif isinstance(frame, BotStartedSpeakingFrame) and direction == FrameDirection.UPSTREAM:
            self._events.on_bot_started_speaking()
        elif isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.UPSTREAM:
            self._events.on_bot_stopped_speaking()
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            self._events.on_vad_stopped(frame.stop_secs)
        elif isinstance(frame, MetricsFrame):
            self._events.on_metrics(frame)


class CallerAudioSink(FrameProcessor):
    """Right after the user aggregator (the last processor that reads the caller's audio): the caller's
    frames end here instead of crossing the LLM, speech taps, TTS, output transport and assistant
    aggregator for nothing. The recorder got them before the pipeline (caller_audio.py)."""

    def __init__(self) -> None:
        super().__init__(name="caller-audio-sink")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not (isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM):
            await self.push_frame(frame, direction)
