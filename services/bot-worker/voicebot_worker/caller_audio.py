"""The caller's audio before the pipeline: noise filter, VAD and the recorder run as each frame arrives;
the pipeline gets the VAD's events, and the caller's audio only as densely as its readers need it.

Why: every 20 ms frame of every call used to cross pipecat's input transport queue, the stream-events
processor, the STT and the user aggregator (its VAD controller, volume meter, turn and idle
controllers), each a queue put, a task wake-up and the observers. At 20 calls that per-frame plumbing
was most of the worker's event-loop time (py-spy, bench/density.py), spent mostly on line silence.

Here the websocket's receive loop only puts each call's frames in its inbox, and one process-wide tick
(CallerAudioTick, every 20 ms) takes the frames of all calls at once: the noise filter (noise.py) and
Silero (vad.py) each run as one batch for all of them, with no future or task wake-up per frame. Then,
per call:
- the recorder takes the frame directly (one append, as its own process_frame would do);
- the pipeline gets VAD start/stop and UserSpeakingFrame as pipecat's VADController makes them;
- while the VAD hears voice (STARTING, SPEAKING, STOPPING) each 20 ms frame goes down the pipeline at
  once (the STT, Smart Turn and the barge-in threshold read them); while it is QUIET the audio is held
  and sent as one frame per `quiet_chunk_s` (default 0.2 s: 5 frames a second instead of 50), and what
  is held goes first when voice starts, so the STT still gets every sample in order, and Smart Turn
  and the STT their pre-roll.
- While the user aggregator mutes the caller (an outbound greeting; it tells us with
  UserMuteStartedFrame), the VAD is not run, as before when it lived in the aggregator, and audio
  goes frame by frame (the fake STT counts muted utterances on them).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

import numpy as np
from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    UserMuteStartedFrame,
    UserMuteStoppedFrame,
    UserSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.websocket.fastapi import FastAPIWebsocketInputTransport

from voicebot_worker.noise import PhoneNoiseFilter, SpectralGateBank
from voicebot_worker.vad import BatchedSileroVAD, batcher

TICK_S = 0.020  # a frame waits at most this long (plus the tick's work) for the filter and the VAD
QUIET_CHUNK_S = 0.2
SPEECH_ACTIVITY_PERIOD_S = 0.2  # pipecat's VADController: a UserSpeakingFrame this often while speaking


class CallerAudio:
    """One call's caller audio: its inbox, and what the pipeline gets for each frame."""

    def __init__(self, vad: BatchedSileroVAD, noise_filter: PhoneNoiseFilter | None,
                 recorder: AudioBufferProcessor | None, quiet_chunk_s: float = QUIET_CHUNK_S) -> None:
        self.vad = vad
        self.noise_filter = noise_filter
        self._recorder = recorder
        self._quiet_chunk_s = quiet_chunk_s
        self.inbox: list[InputAudioRawFrame] = []
        self.push: Callable[[Frame], Awaitable[None]] | None = None  # set by the input transport
        self.on_voice_start: Callable[[], object] = lambda: None  # the output's barge-in pause
        self._reported = VADState.QUIET  # the last state the pipeline was told of: QUIET or SPEAKING
        self._held: list[bytes] = []
        self._held_bytes = 0
        self.muted = False
        self._speaking_s = 0.0  # audio since the last UserSpeakingFrame

    def observe(self, frame: Frame) -> None:
        """Frames the pipeline sends back towards the input (mute changes)."""
        if isinstance(frame, UserMuteStartedFrame):
            self.muted = True
        elif isinstance(frame, UserMuteStoppedFrame):
            self.muted = False

    async def record(self, frame: InputAudioRawFrame) -> None:
        recorder = self._recorder
        if recorder is not None and recorder._recording:  # pipecat's private state, pinned 1.14
            await recorder._process_recording(frame)

    def gate(self, frame: InputAudioRawFrame, state: VADState | None) -> list[Frame]:
        """What goes down the pipeline for `frame`, given the VAD's state after it (None: muted, no VAD)."""
        if state is None:
            return [*self._release(frame), frame]
        reported = self._reported
        if state == VADState.QUIET and reported == VADState.QUIET:  # silence, or a start that fell through
            self._held.append(frame.audio)
            self._held_bytes += len(frame.audio)
            chunk = round(self._quiet_chunk_s * frame.sample_rate) * 2 * frame.num_channels
            return self._release(frame) if self._held_bytes >= chunk else []
        out: list[Frame] = [*self._release(frame), frame]
        # pipecat's VADController: events on reaching SPEAKING or QUIET, not on the STARTING/STOPPING steps,
        # and a UserSpeakingFrame every SPEECH_ACTIVITY_PERIOD_S of speech (its clock: here the audio's)
        if state == VADState.SPEAKING and reported != VADState.SPEAKING:
            self._reported, self._speaking_s = state, 0.0
            self.on_voice_start()  # before the event goes down: the bot is silent by the time it is judged
            out.append(VADUserStartedSpeakingFrame(start_secs=self.vad.params.start_secs))
        elif state == VADState.QUIET:
            self._reported = state
            out.append(VADUserStoppedSpeakingFrame(stop_secs=self.vad.params.stop_secs))
        elif state == VADState.SPEAKING:
            self._speaking_s += len(frame.audio) / (2 * frame.sample_rate * frame.num_channels)
            if self._speaking_s >= SPEECH_ACTIVITY_PERIOD_S - 1e-6:
                self._speaking_s = 0.0
                out.append(UserSpeakingFrame())
        return out

    def _release(self, like: InputAudioRawFrame) -> list[Frame]:
        if not self._held:
            return []
        audio = b"".join(self._held)
        self._held, self._held_bytes = [], 0
        return [InputAudioRawFrame(audio=audio, sample_rate=like.sample_rate, num_channels=like.num_channels)]


class CallerAudioTick:
    """Every call's caller audio in the process, run together every `tick_s` while any call has frames."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self._tick_s = tick_s
        self._calls: set[CallerAudio] = set()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def add(self, caller: CallerAudio) -> None:
        self._calls.add(caller)

    def discard(self, caller: CallerAudio) -> None:
        self._calls.discard(caller)
        caller.inbox.clear()

    def wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="caller-audio-tick")

    async def _loop(self) -> None:
        while self._calls:  # kept while any call is open: a task per frame at low load costs more than idle ticks
            await asyncio.sleep(self._tick_s)
            try:
                await self.run_once()
            except Exception:  # a broken batch drops one tick's audio, never the loop
                logger.exception("caller audio tick failed")

    async def run_once(self) -> None:
        work = [(caller, caller.inbox) for caller in self._calls if caller.inbox]
        for caller, _ in work:
            caller.inbox = []
        self.ticks += 1
        _filter_all(work)
        states = _vad_all(work)
        for (caller, frames), call_states in zip(work, states, strict=True):
            try:
                for frame, state in zip(frames, call_states, strict=True):
                    await caller.record(frame)
                    for out in caller.gate(frame, state):
                        if caller.push is not None:
                            await caller.push(out)
            except Exception:  # one call's trouble stays its own
                logger.exception("caller audio frame dropped")


def _filter_all(work: list[tuple[CallerAudio, list[InputAudioRawFrame]]]) -> None:
    """Noise-filter every frame in place, one batch per filter bank (per sample rate)."""
    by_bank: dict[int, tuple[SpectralGateBank, list[tuple[int, np.ndarray]], list]] = {}
    for caller, frames in work:
        noise_filter = caller.noise_filter
        if noise_filter is None or not noise_filter.active:
            continue
        bank, items, spans = by_bank.setdefault(id(noise_filter.bank), (noise_filter.bank, [], []))
        for frame in frames:
            hops = noise_filter.hops(frame.audio)
            spans.append((noise_filter, frame, len(items), len(hops)))
            items.extend((noise_filter.slot, hop) for hop in hops)
    for bank, items, spans in by_bank.values():
        outs = bank.run_in_order(items) if items else []
        for noise_filter, frame, start, count in spans:
            frame.audio = noise_filter.assemble(outs[start:start + count], len(frame.audio) // 2)


def _vad_all(work: list[tuple[CallerAudio, list[InputAudioRawFrame]]]) -> list[list[VADState | None]]:
    """Each frame's VAD state (None while muted), every call's windows scored in one batch per rate."""
    per_frame: list[list[list[np.ndarray] | None]] = []
    by_rate: dict[int, list] = {}
    for caller, frames in work:
        vad = caller.vad
        if caller.muted:
            per_frame.append([None] * len(frames))
            continue
        if not vad.sample_rate:
            vad.set_sample_rate(frames[0].sample_rate)
        windows = vad.windows_per_frame([frame.audio for frame in frames])
        per_frame.append(windows)
        items = by_rate.setdefault(vad.sample_rate, [])
        items.extend((vad.call_state, window) for frame_windows in windows for window in frame_windows)
    scores = {rate: iter(batcher().score_now(items, rate)) for rate, items in by_rate.items() if items}
    states: list[list[VADState | None]] = []
    for (caller, frames), windows in zip(work, per_frame, strict=True):
        call_states: list[VADState | None] = []
        for frame, frame_windows in zip(frames, windows, strict=True):
            if frame_windows is None:
                call_states.append(None)
                continue
            rate_scores = scores.get(caller.vad.sample_rate)
            taken = [next(rate_scores) for _ in frame_windows] if rate_scores is not None else []
            call_states.append(caller.vad.state_after(frame.audio, taken))
        states.append(call_states)
    return states


_TICKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CallerAudioTick] = weakref.WeakKeyDictionary()


def tick() -> CallerAudioTick:
    """The running event loop's tick: one per loop, as its task and the pipelines it pushes into belong
    to that loop (a worker has one; a test process may run several workers, each on its own loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _TICKS:
        _TICKS[loop] = CallerAudioTick()
    return _TICKS[loop]


class CallerAudioInputTransport(FastAPIWebsocketInputTransport):
    """The websocket input transport with the process-wide CallerAudioTick in place of pipecat's per-call
    audio queue and task (which filtered and pushed every frame)."""

    def __init__(self, *args, caller_audio: CallerAudio, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.caller_audio = caller_audio
        caller_audio.push = self.push_frame
        self._listening = False
        self._tick: CallerAudioTick | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction == FrameDirection.UPSTREAM:
            self.caller_audio.observe(frame)
        await super().process_frame(frame, direction)

    async def push_audio_frame(self, frame: InputAudioRawFrame) -> None:
        if self._listening and not self._paused and self._tick is not None:
            self.caller_audio.inbox.append(frame)
            self._tick.wake()

    # pipecat creates and cancels its audio task on start, pause, stop and cancel: here they say whether
    # this call's frames go to the tick.
    def _create_audio_task(self) -> None:
        if self._params.audio_in_enabled:
            self._listening = True
            self._tick = tick()
            self._tick.add(self.caller_audio)

    async def _cancel_audio_task(self) -> None:
        self._listening = False
        if self._tick is not None:
            self._tick.discard(self.caller_audio)
