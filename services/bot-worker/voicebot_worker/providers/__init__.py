"""STT, LLM and TTS services for a call, chosen by the agent profile's `providers`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from voicebot_core.profiles import AgentProfile

if TYPE_CHECKING:
    from voicebot_worker.settings import WorkerSettings


@dataclass
class ProviderServices:
    stt: STTService
    llm: LLMService
    tts: TTSService
    pipeline_sample_rate: int = 8000  # audio_in/out rate of the PipelineParams (local whisper wants 16000)


def build_services(profile: AgentProfile, settings: WorkerSettings) -> ProviderServices:
    services = _build(profile, settings)
    if settings.worker_prepare_phrases:
        from voicebot_worker.prepared_phrases import serve_prepared

        services.tts = serve_prepared(services.tts)
    return services


def _build(profile: AgentProfile, settings: WorkerSettings) -> ProviderServices:
    if profile.providers == "fake":
        from voicebot_worker.providers.fake import build_fake_services

        return build_fake_services(profile, settings)
    if profile.providers == "cloud":
        from voicebot_worker.providers.cloud import build_cloud_services

        return build_cloud_services(profile, settings)
    if profile.providers == "local":
        from voicebot_worker.providers.local import build_local_services

        return build_local_services(profile, settings)
    raise ValueError(f"unknown providers {profile.providers!r} in agent profile {profile.name!r}")
