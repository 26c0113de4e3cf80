"""Local providers on the real small models (`make models --only small`): neural caller voice through
the phone channel into whisper, the LLM server process with SmolLM2 through pipecat's OpenAILLMService,
and the bot's TTS engines producing speech whisper can read back."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pipecat.frames.frames import (
    InputAudioRawFrame,
    LLMContextFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.tests.utils import run_test

from helpers.servers import ROOT, free_port
from voicebot_core import audio
from voicebot_core.profiles import AgentProfile
from voicebot_emulator.neural_voice import HibariVoice, PiperVoice
from voicebot_worker.providers import local, local_llm

pytestmark = pytest.mark.models

RATE = local.PIPELINE_SAMPLE_RATE
CALLER_SENTENCE = "Hello, I would like to book a table for two people tomorrow evening."
CALLER_KEYWORDS = {"book", "table", "two", "tomorrow", "evening"}


@pytest.fixture(scope="module")
def models_dir() -> Path:
    directory = local.models_dir()
    if not directory.is_dir():
        pytest.skip(f"no models directory at {directory}: run `make models` (scripts/fetch_models.py --only small)")
    return directory


@pytest.fixture(scope="module")
def settings(models_dir: Path) -> SimpleNamespace:
    return SimpleNamespace(models_dir=str(models_dir), worker_llm_base_url=None)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def twilio_media_messages(mulaw: bytes, stream_sid: str = "MZ0") -> Iterator[str]:
    for index, chunk in enumerate(audio.mulaw_frames(mulaw)):
        yield json.dumps({"event": "media", "sequenceNumber": str(index + 3), "streamSid": stream_sid,
                          "media": {"track": "inbound", "chunk": str(index + 1), "timestamp": str(index * 20),
                                    "payload": base64.b64encode(chunk).decode()}})


async def transcribe(stt, pcm16k: bytes) -> str:
    """One caller turn through the STT service, segmented as the VAD would."""
    step = RATE // 50 * 2  # 20 ms
    frames = [VADUserStartedSpeakingFrame()]
    frames += [InputAudioRawFrame(audio=pcm16k[i:i + step], sample_rate=RATE, num_channels=1)
               for i in range(0, len(pcm16k), step)]
    frames.append(VADUserStoppedSpeakingFrame())
    down, _ = await run_test(stt, frames_to_send=frames, expected_down_frames=None,
                             pipeline_params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))
    return " ".join(f.text for f in down if isinstance(f, TranscriptionFrame))


@pytest.mark.parametrize("voice", ["piper", "hibari"])
async def test_neural_caller_voice_through_phone_channel_is_transcribed(models_dir: Path, settings, voice: str) -> None:
    caller = PiperVoice(models_dir / "piper-joe") if voice == "piper" else HibariVoice()
    mulaw = audio.pcm16_to_mulaw(caller.synthesize(CALLER_SENTENCE, sample_rate=8000))
    # The same path as a call: Twilio media messages -> pipecat's serializer -> 16 kHz pipeline audio.
    serializer = TwilioFrameSerializer(stream_sid="MZ0", params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
    await serializer.setup(SimpleNamespace(audio_in_sample_rate=RATE))
    pcm = bytearray()
    # Trailing silence flushes the stream resampler (it holds back the first few ms).
    for message in twilio_media_messages(mulaw + audio.silence_mulaw(0.3)):
        frame = await serializer.deserialize(message)
        if frame is not None:
            assert isinstance(frame, InputAudioRawFrame) and frame.sample_rate == RATE
            pcm += frame.audio
    assert abs(len(pcm) / (2 * RATE) - len(mulaw) / 8000) < 0.4
    services = local.build_local_services(AgentProfile(name="local-test", providers="local"), settings)
    assert services.pipeline_sample_rate == RATE

    started = time.monotonic()
    transcript = await transcribe(services.stt, bytes(pcm))
    elapsed = time.monotonic() - started

    missing = CALLER_KEYWORDS - words(transcript)
    assert not missing, f"{voice} caller: whisper heard {transcript!r}, missing {missing}"
    assert elapsed < 30, f"one turn took {elapsed:.1f} s"


@pytest.mark.parametrize("engine", ["hibari", "piper"])
async def test_bot_tts_speaks_what_whisper_reads_back(models_dir: Path, settings, engine: str) -> None:
    profile = AgentProfile(name="local-test", providers="local", provider_options={"tts": engine})
    services = local.build_local_services(profile, settings)
    sentence = "Your table for two is booked for seven tomorrow evening."
    down, _ = await run_test(services.tts, frames_to_send=[TTSSpeakFrame(sentence)], expected_down_frames=None,
                             pipeline_params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))
    chunks = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert chunks and {f.sample_rate for f in chunks} == {RATE}
    pcm = b"".join(f.audio for f in chunks)
    seconds = len(pcm) / (2 * RATE)
    assert 1.5 < seconds < 10, f"{engine} produced {seconds:.2f} s for a 10-word sentence"
    assert np.abs(np.frombuffer(pcm, np.int16)).max() > 3000, "synthesized audio is (near) silent"

    heard = words(await transcribe(local.LocalWhisperSTTService(local.whisper_model_dir(settings)), pcm))
    missing = {"table", "two", "booked", "tomorrow", "evening"} - heard
    # The bot voices sample noise on every synthesis; whisper tiny.en now and then drops one short word.
    assert len(missing) <= 1, f"{engine}: whisper heard {sorted(heard)}, missing {missing}"


@pytest.fixture(scope="module")
def llm_server(models_dir: Path) -> Iterator[str]:
    """`python -m voicebot_worker.llm_server` with SmolLM2 on a free port; yields its /v1 base URL."""
    model = models_dir / "smollm2-135m" / "model.gguf"
    local.require_model(model, "SmolLM2 135M GGUF")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicebot_worker.llm_server", "--model", str(model), "--port", str(port),
         "--ctx", "1024", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"llm_server exited early: {proc.stdout.read() if proc.stdout else ''}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "llm_server did not become healthy in 120 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            returncode = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert returncode == 0, f"llm_server exited with {returncode} on SIGTERM"


async def test_llm_server_streams_a_completion_to_pipecat(settings, llm_server: str) -> None:
    llm_settings = SimpleNamespace(models_dir=settings.models_dir, worker_llm_base_url=llm_server)
    llm = local_llm.build_llm(llm_settings, {"max_tokens": 24})
    question = "In one short sentence: what is the capital of France?"
    context = LLMContext(messages=[{"role": "user", "content": question}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)], expected_down_frames=None,
                             start_timeout=5.0)
    tokens = [f.text for f in down if isinstance(f, LLMTextFrame)]
    assert len(tokens) > 1, f"expected a streamed reply, got {tokens!r}"
    assert "".join(tokens).strip()


def test_health_and_models_endpoints(llm_server: str) -> None:
    base = llm_server.removesuffix("/v1")
    with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
        assert json.load(response)["status"] == "ok"
    with urllib.request.urlopen(f"{llm_server}/models", timeout=5) as response:
        assert [m["id"] for m in json.load(response)["data"]] == ["local"]
