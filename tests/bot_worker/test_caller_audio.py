"""CallerAudio on the process-wide tick: what the pipeline gets for each 20 ms frame from the phone."""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    InputAudioRawFrame,
    UserMuteStartedFrame,
    UserMuteStoppedFrame,
    UserSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor

from voicebot_core.audio import mulaw_to_pcm16, pcm16_to_mulaw
from voicebot_simulation.formant_voice import synthesize
from voicebot_worker.caller_audio import CallerAudio, CallerAudioTick, tick
from voicebot_worker.noise import PhoneNoiseFilter
from voicebot_worker.vad import BatchedSileroVAD

PARAMS = VADParams(start_secs=0.08, stop_secs=0.2, confidence=0.7, min_volume=0.3)
FRAME = 160


def line(seconds: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 60, int(seconds * 8000)).astype(np.int16)


def phone(samples: np.ndarray) -> np.ndarray:
    return mulaw_to_pcm16(pcm16_to_mulaw(samples.astype(np.int16)))


def frames_of(samples: np.ndarray) -> list[InputAudioRawFrame]:
    data = samples.astype("<i2").tobytes()
    return [InputAudioRawFrame(audio=data[i:i + 2 * FRAME], sample_rate=8000, num_channels=1)
            for i in range(0, len(data) - 2 * FRAME + 1, 2 * FRAME)]


class Recorder(AudioBufferProcessor):
    def __init__(self) -> None:
        super().__init__(num_channels=2)
        self._recording = True
        self.frames: list[InputAudioRawFrame] = []

    async def _process_recording(self, frame) -> None:
        self.frames.append(frame)


async def feed(caller: CallerAudio, frames: list[InputAudioRawFrame], per_tick: int = 1) -> list:
    """Runs the tick by hand, `per_tick` frames in the inbox at each (more: a worker catching up)."""
    out: list = []

    async def push(frame) -> None:
        out.append(frame)

    caller.push = push
    tick = CallerAudioTick()
    tick.add(caller)
    for start in range(0, len(frames), per_tick):
        caller.inbox.extend(frames[start:start + per_tick])
        await tick.run_once()
    return out


def audio_of(out: list) -> bytes:
    return b"".join(f.audio for f in out if isinstance(f, InputAudioRawFrame))


async def test_line_silence_goes_down_in_fifth_of_a_second_frames_with_every_sample_and_no_events():
    recorder = Recorder()
    caller = CallerAudio(BatchedSileroVAD(params=PARAMS), None, recorder)
    frames = frames_of(phone(line(2.0)))
    sent = b"".join(f.audio for f in frames)
    out = await feed(caller, frames)
    assert all(isinstance(f, InputAudioRawFrame) for f in out)
    assert [len(f.audio) for f in out] == [2 * 1600] * 10  # 100 frames of 20 ms -> 10 frames of 0.2 s
    assert audio_of(out) == sent
    assert recorder.frames == frames  # the recording still gets each 20 ms frame as it comes


async def test_speech_goes_down_frame_by_frame_between_one_vad_start_and_one_vad_stop():
    recorder = Recorder()
    noise_filter = PhoneNoiseFilter()
    await noise_filter.start(8000)
    caller = CallerAudio(BatchedSileroVAD(params=PARAMS), noise_filter, recorder)
    speech = phone(synthesize("I would like to check the status of my order", 8000))
    frames = frames_of(np.concatenate([line(0.5), speech + line(len(speech) / 8000, seed=2), line(1.0, seed=3)]))
    out = await feed(caller, frames)
    await noise_filter.stop()

    kinds = [type(f) for f in out]
    assert kinds.count(VADUserStartedSpeakingFrame) == 1 and kinds.count(VADUserStoppedSpeakingFrame) == 1
    start, stop = kinds.index(VADUserStartedSpeakingFrame), kinds.index(VADUserStoppedSpeakingFrame)
    assert start < stop and UserSpeakingFrame in kinds[start:stop]  # pipecat's speech activity, 5 a second
    assert all(len(f.audio) == 2 * FRAME for f in out[start:stop] if isinstance(f, InputAudioRawFrame))
    sent, got = b"".join(f.audio for f in frames), audio_of(out)  # filtered in place
    assert sent.startswith(got) and len(sent) - len(got) < 2 * 1600  # in order; only a quiet chunk still held
    started_at = sum(len(f.audio) for f in out[:start] if isinstance(f, InputAudioRawFrame)) / 16000
    assert 0.45 < started_at < 0.9  # the speech begins at 0.5 s
    assert recorder.frames == frames


async def test_frames_that_queued_up_between_ticks_give_what_they_give_one_by_one():
    speech = phone(synthesize("what are your opening hours on the weekend", 8000))
    samples = np.concatenate([line(0.4), speech + line(len(speech) / 8000, seed=2), line(0.8, seed=3)])

    async def run(per_tick: int) -> tuple[list, list]:
        noise_filter = PhoneNoiseFilter()
        await noise_filter.start(8000)
        out = await feed(CallerAudio(BatchedSileroVAD(params=PARAMS), noise_filter, None), frames_of(samples),
                         per_tick)
        await noise_filter.stop()
        return [type(f) for f in out if not isinstance(f, UserSpeakingFrame)], audio_of(out)

    one_kinds, one_audio = await run(1)
    five_kinds, five_audio = await run(5)
    assert one_audio == five_audio
    assert one_kinds == five_kinds and VADUserStartedSpeakingFrame in one_kinds


async def test_two_calls_on_one_tick_keep_their_own_filter_and_vad_state():
    speech = phone(synthesize("I would like to check my order", 8000))
    talker_frames = frames_of(np.concatenate([line(0.3), speech, line(0.6, seed=4)]))
    quiet_frames = frames_of(line(len(talker_frames) * 0.02, seed=5))
    talker, quiet = (CallerAudio(BatchedSileroVAD(params=PARAMS), None, None) for _ in range(2))
    outs: dict[int, list] = {id(talker): [], id(quiet): []}
    for caller in (talker, quiet):
        async def push(frame, key=id(caller)) -> None:
            outs[key].append(frame)
        caller.push = push
    tick = CallerAudioTick()
    tick.add(talker)
    tick.add(quiet)
    for a, b in zip(talker_frames, quiet_frames, strict=True):
        talker.inbox.append(a)
        quiet.inbox.append(b)
        await tick.run_once()
    assert [type(f) for f in outs[id(talker)]].count(VADUserStartedSpeakingFrame) == 1
    assert all(isinstance(f, InputAudioRawFrame) for f in outs[id(quiet)])


async def test_while_the_aggregator_mutes_the_caller_no_vad_runs_and_frames_go_one_by_one():
    caller = CallerAudio(BatchedSileroVAD(params=PARAMS), None, None)
    caller.observe(UserMuteStartedFrame())
    speech = phone(synthesize("hello who is this", 8000))
    out = await feed(caller, frames_of(np.concatenate([line(0.3), speech, line(0.5)])))
    assert out and all(isinstance(f, InputAudioRawFrame) and len(f.audio) == 2 * FRAME for f in out)
    caller.observe(UserMuteStoppedFrame())
    out = await feed(caller, frames_of(np.concatenate([speech, line(0.6)])))
    assert [type(f) for f in out].count(VADUserStartedSpeakingFrame) == 1


def test_each_event_loop_has_its_own_tick():
    async def mine():
        return tick()

    first, second = asyncio.run(mine()), asyncio.run(mine())
    assert first is not second  # a tick's task and the pipelines it feeds live on one loop
