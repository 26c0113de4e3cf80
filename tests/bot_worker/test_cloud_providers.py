"""Cloud providers are pipecat's own services; building them needs keys but no network."""

from __future__ import annotations

import pytest

from helpers.constants import SHIPPED_PROFILES_PATH as PROFILES_PATH
from voicebot_core.profiles import AgentProfiles
from voicebot_worker.providers import build_services
from voicebot_worker.settings import WorkerSettings


def test_cloud_profile_builds_deepgram_groq_deepgram_offline():
    profile = AgentProfiles.load(PROFILES_PATH).get("support-cloud")
    settings = WorkerSettings(deepgram_api_key="dg-test", groq_api_key="gq-test")
    services = build_services(profile, settings)
    assert [type(s).__name__ for s in (services.stt, services.llm, services.tts)] == [
        "DeepgramSTTService", "GroqLLMService", "DeepgramTTSService"]
    assert services.pipeline_sample_rate == 8000


def test_cloud_openai_and_cartesia_options():
    # provider_options is not a per-call override (voicebot_core.profiles): a profile that sets them
    profile = AgentProfiles.load(PROFILES_PATH).get("support-cloud").model_copy(
        update={"provider_options": {"llm": "openai", "tts": "cartesia"}, "voice": "voice-id"})
    settings = WorkerSettings(deepgram_api_key="dg", openai_api_key="oa", cartesia_api_key="ca")
    services = build_services(profile, settings)
    assert type(services.llm).__name__ == "OpenAILLMService"
    assert type(services.tts).__name__ == "CartesiaTTSService"


def test_missing_cloud_keys_are_named():
    profile = AgentProfiles.load(PROFILES_PATH).get("support-cloud")
    with pytest.raises(ValueError, match=r"VOICEBOT_DEEPGRAM_API_KEY.*VOICEBOT_GROQ_API_KEY"):
        build_services(profile, WorkerSettings(deepgram_api_key="", groq_api_key=""))
