"""The deterministic providers, each run in a real pipecat pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.frames.frames import (
    FunctionCallResultProperties,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from voicebot_simulation import caller_script
from voicebot_simulation.formant_voice import synthesize
from voicebot_worker.providers.fake import FakeLLM, FakeSTT, FakeTTS, choose_reply, load_script_utterances


@pytest.mark.parametrize("name", caller_script.builtin_names())
def test_script_utterances_match_the_emulator(name):
    import yaml

    data = yaml.safe_load((caller_script.BUILTIN_DIR / f"{name}.yaml").read_text())
    assert load_script_utterances(data) == caller_script.utterances(name)


def test_barge_in_script_lists_barge_in_text_in_step_order():
    assert load_script_utterances("barge-in") == ["tell me about your opening hours", "wait, one more question"]


def test_reply_rules():
    rules = [{"match": "ORDER", "reply": "About your order: {text}"}, {"match": "bye", "tool": "end_call"}]
    assert choose_reply(rules, "my order please") == {"reply": "About your order: my order please"}
    assert choose_reply(rules, "ok bye now") == {"tool": "end_call"}
    assert choose_reply(rules, "hello there.") == {"reply": "You said: hello there."}


async def test_fake_llm_streams_the_reply():
    llm = FakeLLM([{"match": "hours", "reply": "We open at nine."}], ttfb_s=0.01)
    context = LLMContext(messages=[{"role": "user", "content": "what are your hours"}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert text == "We open at nine."
    kinds = [type(f) for f in down if isinstance(f, (LLMFullResponseStartFrame, LLMTextFrame,
                                                       LLMFullResponseEndFrame))]
    assert kinds[0] is LLMFullResponseStartFrame and kinds[-1] is LLMFullResponseEndFrame


async def test_fake_llm_tool_call_runs_the_registered_handler():
    llm = FakeLLM([{"match": "goodbye", "tool": "end_call"}], ttfb_s=0.0)
    calls: list[str] = []

    async def end_call(params):
        calls.append(params.function_name)
        await params.result_callback({"ok": True}, properties=FunctionCallResultProperties(run_llm=False))

    llm.register_function("end_call", end_call)
    context = LLMContext(messages=[{"role": "user", "content": "thanks, goodbye"}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    assert calls == ["end_call"]
    assert not [f for f in down if isinstance(f, LLMTextFrame)]


async def test_fake_tts_speaks_formant_audio_in_20ms_chunks():
    tts = FakeTTS(ttfb_s=0.0)
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame("Hello there.")],
                             pipeline_params=PipelineParams(audio_out_sample_rate=8000))
    chunks = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert chunks and all(f.sample_rate == 8000 for f in chunks)
    assert max(len(f.audio) for f in chunks) == 320  # 20 ms at 8 kHz, 16-bit
    audio = np.frombuffer(b"".join(f.audio for f in chunks), dtype="<i2")
    assert np.array_equal(audio, synthesize("Hello there.", 8000))


async def test_fake_stt_emits_script_utterances_per_speech_segment():
    stt = FakeSTT(["first thing", "second thing"], delay_s=0.0)
    speech = synthesize("some words here", 8000).astype("<i2").tobytes()
    noise_blip = bytes(320 * 2)

    def segment(pcm: bytes) -> list:
        frames = [VADUserStartedSpeakingFrame()]
        frames += [InputAudioRawFrame(pcm[i:i + 320], 8000, 1) for i in range(0, len(pcm), 320)]
        return [*frames, VADUserStoppedSpeakingFrame()]

    down, _ = await run_test(stt, frames_to_send=[*segment(speech), *segment(noise_blip), *segment(speech)],
                             pipeline_params=PipelineParams(audio_in_sample_rate=8000))
    texts = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    assert texts == ["first thing", "second thing"]  # the too-short blip is not a caller utterance
