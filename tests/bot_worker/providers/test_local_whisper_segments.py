"""Whisper's transcript of a segment is final only if the caller has not begun another one since: the
turn stop strategy must not take "Hi" for the whole of "Hi, [pause] my kitchen sink is leaking."."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from voicebot_emulator.neural_voice import PiperVoice
from voicebot_worker.providers import local

pytestmark = pytest.mark.models

RATE = local.PIPELINE_SAMPLE_RATE
STEP = RATE // 50 * 2  # bytes in 20 ms
# The call goes on after the caller's last segment: the test pipeline ends only once whisper is done (an
# ending pipeline queues its own stop behind the segments, which would count as the caller going on).
TRANSCRIBED_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def caller() -> PiperVoice:
    directory = local.models_dir()
    if not (directory / local.PIPER_DIR).is_dir():
        pytest.skip(f"no Piper voice under {directory}: run `make models-small`")
    return PiperVoice(directory / local.PIPER_DIR)


def segment(caller: PiperVoice, text: str) -> list:
    pcm = np.asarray(caller.synthesize(text, sample_rate=RATE), dtype=np.int16).tobytes()
    return [VADUserStartedSpeakingFrame(),
            *(InputAudioRawFrame(audio=pcm[i:i + STEP], sample_rate=RATE, num_channels=1)
              for i in range(0, len(pcm), STEP)),
            VADUserStoppedSpeakingFrame()]


async def transcripts(frames: list) -> list[TranscriptionFrame]:
    stt = local.LocalWhisperSTTService(local.whisper_model_dir())
    down, _ = await run_test(stt, frames_to_send=[*frames, SleepFrame(sleep=TRANSCRIBED_WITHIN_S)],
                             expected_down_frames=None,
                             pipeline_params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))
    return [f for f in down if isinstance(f, TranscriptionFrame)]


async def test_a_segment_transcribed_after_the_caller_went_on_is_not_final(caller: PiperVoice) -> None:
    # The second segment's frames reach the service while whisper still works on the first.
    first, second = await transcripts(segment(caller, "Hi.") + segment(caller, "My kitchen sink is leaking."))
    assert "hi" in first.text.lower() and not first.finalized
    assert "kitchen" in second.text.lower() and second.finalized


async def test_a_lone_segment_is_final(caller: PiperVoice) -> None:
    [only] = await transcripts(segment(caller, "Tomorrow morning would be great."))
    assert "morning" in only.text.lower() and only.finalized


def test_whisper_decodes_greedily() -> None:
    model = local.LocalWhisperSTTService(local.whisper_model_dir())._model
    assert isinstance(model, local.GreedyWhisper) and model.DECODING["beam_size"] == 1
