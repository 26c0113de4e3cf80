"""Prepared phrases: fixed prompts synthesised before the worker is ready, played from memory on calls."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import run_test
from test_worker_stream import open_call

from helpers.constants import WORKER_TICKET_SECRET as TICKET_SECRET
from helpers.servers import Service, free_port, python_module
from voicebot_core import metrics
from voicebot_core.profiles import AgentProfile, AgentProfiles, ProfilesFile
from voicebot_worker import prepared_phrases
from voicebot_worker.prepared_phrases import PreparedPhrasesTTS, prepare_worker, serve_prepared, static_phrases
from voicebot_worker.providers.fake import FakeTTS
from voicebot_worker.settings import WorkerSettings


def unique_profile(**fields: object) -> dict:
    """A fake profile whose texts no other test prepared (the cache lives as long as the process)."""
    tag = uuid.uuid4().hex[:6]
    return {"providers": "fake", "turn_detection": "speech_timeout", "provider_options": {"tts_ttfb_s": 0.0},
            "greeting": {"inbound": f"Hello {tag}, how can I help?", "outbound": "Hi {name}, this is Robin."},
            "idle_prompt": f"Still there {tag}?", **fields}


def profiles_file(tmp_path: Path, profile: dict) -> Path:
    path = tmp_path / f"profiles-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"default_profile": "p", "profiles": {"p": profile}}))
    return path


def hits() -> float:
    return metrics.TTS_PREPARED_PHRASES.labels("hit")._value.get()


async def greeting_audio(base: str, settings: WorkerSettings) -> bytes:
    """The first second of bot audio the phone receives (mu-law, 8 kHz)."""
    peer = await open_call(base, settings, "p")
    try:
        await peer.wait_for(lambda: sum(len(e.message["media"]["payload"]) for e in peer.log.events("media"))
                            > 8000 * 4 / 3, timeout=15)
        return b"".join(base64.b64decode(e.message["media"]["payload"]) for e in peer.log.events("media"))[:8000]
    finally:
        await peer.close()


def test_static_phrases_leave_out_texts_with_variables():
    profile = AgentProfile.model_validate(unique_profile(goodbye="Bye!", transfer_message="Bye!"))
    phrases = static_phrases(profile)
    assert profile.greeting.inbound in phrases and "Bye!" in phrases
    assert len(phrases) == len(set(phrases))
    assert not any("{name}" in text for text in phrases)


async def test_worker_prepares_before_ready_and_greets_from_memory(worker_factory, tmp_path):
    profile = unique_profile()
    greeting = profile["greeting"]["inbound"]
    base, settings = worker_factory(agent_profiles_path=str(profiles_file(tmp_path, profile)))
    # the app is serving: its start-up (lifespan) prepared the greeting with one synthesis
    assert FakeTTS.syntheses[greeting] == 1 and FakeTTS.syntheses[profile["idle_prompt"]] == 1
    async with httpx.AsyncClient() as client:
        assert (await client.get(base.replace("ws://", "http://") + "/readyz")).status_code == 200
    hits_before = hits()
    prepared = await greeting_audio(base, settings)
    assert FakeTTS.syntheses[greeting] == 1, "the first call's greeting was synthesised again"
    assert hits() == hits_before + 1

    # the same profile on a worker without prepared phrases: live synthesis, the same samples at the phone
    off_base, off_settings = worker_factory(agent_profiles_path=str(profiles_file(tmp_path, profile)),
                                            worker_prepare_phrases=False)
    live = await greeting_audio(off_base, off_settings)
    assert FakeTTS.syntheses[greeting] == 2
    assert live == prepared


async def test_failing_tts_at_start_leaves_the_worker_ready_and_calls_greeted(worker_factory, tmp_path,
                                                                              monkeypatch):
    async def broken(self, text: str, sample_rate: int) -> tuple[bytes, ...]:
        raise RuntimeError("TTS down at start")

    monkeypatch.setattr(PreparedPhrasesTTS, "synthesize", broken)
    profile = unique_profile()
    base, settings = worker_factory(agent_profiles_path=str(profiles_file(tmp_path, profile)))
    async with httpx.AsyncClient() as client:
        assert (await client.get(base.replace("ws://", "http://") + "/readyz")).status_code == 200
    assert await greeting_audio(base, settings)
    assert FakeTTS.syntheses[profile["greeting"]["inbound"]] == 1  # live, on the call


async def speak(tts: FakeTTS, text: str) -> list[TTSAudioRawFrame]:
    down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(text)],
                             pipeline_params=PipelineParams(audio_out_sample_rate=8000))
    return [f for f in down if isinstance(f, TTSAudioRawFrame)]


def frame_types(frames: list) -> list[str]:
    return [type(f).__name__ for f in frames]


@pytest.mark.parametrize("prepared", [True, False])
async def test_prepared_tts_pushes_the_frames_of_live_tts(tmp_path, prepared):
    profile = unique_profile()
    settings = WorkerSettings(agent_profiles_path=str(profiles_file(tmp_path, profile)),
                              worker_prepare_phrases=prepared)
    profiles = AgentProfiles(ProfilesFile.model_validate({"profiles": {"p": profile}}))
    count = await prepare_worker(profiles, settings)  # texts shared with other tests' profiles are there already
    assert count >= 2 if prepared else count == 0
    greeting = profile["greeting"]["inbound"]
    at_start = FakeTTS.syntheses[greeting]
    assert at_start == (1 if prepared else 0)
    served = await speak(serve_prepared(FakeTTS(ttfb_s=0.0)) if prepared else FakeTTS(ttfb_s=0.0), greeting)
    assert FakeTTS.syntheses[greeting] == at_start + (0 if prepared else 1)
    live = await speak(FakeTTS(ttfb_s=0.0), greeting)
    assert served and [f.audio for f in served] == [f.audio for f in live]


async def test_a_greeting_with_call_variables_is_synthesised_live(tmp_path):
    profile = unique_profile()
    profiles = AgentProfiles(ProfilesFile.model_validate({"profiles": {"p": profile}}))
    await prepare_worker(profiles, WorkerSettings(agent_profiles_path=str(profiles_file(tmp_path, profile))))
    text = profiles.get("p").greeting_for("outbound", {"name": f"Ann {uuid.uuid4().hex[:4]}"})
    misses = metrics.TTS_PREPARED_PHRASES.labels("miss")._value.get()
    assert await speak(serve_prepared(FakeTTS(ttfb_s=0.0)), text)
    assert FakeTTS.syntheses[text] == 1
    assert metrics.TTS_PREPARED_PHRASES.labels("miss")._value.get() == misses + 1
    assert prepared_phrases.prepared_count() > 0


async def test_every_frame_of_a_prepared_utterance_comes_in_live_order(tmp_path):
    profile = unique_profile()
    profiles = AgentProfiles(ProfilesFile.model_validate({"profiles": {"p": profile}}))
    await prepare_worker(profiles, WorkerSettings(agent_profiles_path=str(profiles_file(tmp_path, profile))))
    text = profile["idle_prompt"]

    async def all_frames(tts: FakeTTS) -> list[str]:
        down, _ = await run_test(tts, frames_to_send=[TTSSpeakFrame(text)],
                                 pipeline_params=PipelineParams(audio_out_sample_rate=8000))
        return frame_types(down)

    served, live = await asyncio.gather(all_frames(serve_prepared(FakeTTS(ttfb_s=0.0))),
                                        all_frames(FakeTTS(ttfb_s=0.0)))
    assert served == live and served[0] != "TTSAudioRawFrame" and "TTSStoppedFrame" in served


def metric(exposition: str, series: str) -> float:
    return next(float(line.split(" ")[1]) for line in exposition.splitlines() if line.startswith(series + " "))


@pytest.mark.slow
async def test_fresh_worker_process_greets_its_first_call_from_memory(redis_url, redis_prefix, tmp_path):
    port, worker_id = free_port(), f"proc-{uuid.uuid4().hex[:6]}"
    env = {"VOICEBOT_REDIS_URL": redis_url, "VOICEBOT_REDIS_PREFIX": redis_prefix, "VOICEBOT_WORKER_ID": worker_id,
           "VOICEBOT_WORKER_PORT": str(port), "VOICEBOT_STREAM_TICKET_SECRET": TICKET_SECRET,
           "VOICEBOT_AGENT_PROFILES_PATH": str(profiles_file(tmp_path, unique_profile())),
           "VOICEBOT_STORAGE_DIR": str(tmp_path), "VOICEBOT_LOG_LEVEL": "INFO"}
    http = f"http://127.0.0.1:{port}"
    service = Service(python_module("voicebot_worker"), env, f"{http}/readyz", tmp_path / "worker.log")
    service.wait_ready(60)
    try:
        log = service.log_tail(200)
        assert 0 <= log.find("phrases prepared") < log.find(f"worker {worker_id} registered"), log
        settings = WorkerSettings(worker_id=worker_id, stream_ticket_secret=TICKET_SECRET, dev_mode=True)
        assert await greeting_audio(f"ws://127.0.0.1:{port}", settings)
        async with httpx.AsyncClient() as client:
            exposition = (await client.get(f"{http}/metrics")).text
        assert metric(exposition, 'voicebot_tts_prepared_phrases_total{result="hit"}') == 1
        assert metric(exposition, 'voicebot_tts_prepared_phrases_total{result="miss"}') == 0
    finally:
        service.stop()


def test_websocket_tts_stays_live():
    from pipecat.services.deepgram.tts import DeepgramTTSService

    tts = DeepgramTTSService(api_key="dg-test", settings=DeepgramTTSService.Settings(voice="aura-2-thalia-en"))
    assert not isinstance(serve_prepared(tts), PreparedPhrasesTTS)
