"""Cloud providers through pipecat's own services: Deepgram STT, Groq/OpenAI LLM, Deepgram/Cartesia TTS.

Building them opens no connection (they connect when the pipeline starts), so a profile can be
validated offline. provider_options: llm (groq|openai), llm_model, stt_model, tts (deepgram|cartesia),
tts_voice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicebot_core.profiles import AgentProfile
from voicebot_worker.providers import ProviderServices

if TYPE_CHECKING:
    from voicebot_worker.settings import WorkerSettings


def build_cloud_services(profile: AgentProfile, settings: WorkerSettings) -> ProviderServices:
    options = profile.provider_options
    _require_keys(settings, options)
    return ProviderServices(
        stt=_stt(profile, settings, options),
        llm=_llm(profile, settings, options),
        tts=_tts(profile, settings, options),
        pipeline_sample_rate=8000,
    )


def _require_keys(settings: WorkerSettings, options: dict) -> None:
    needed = {"deepgram_api_key"}
    needed.add("openai_api_key" if options.get("llm", "groq") == "openai" else "groq_api_key")
    needed.add("cartesia_api_key" if options.get("tts", "deepgram") == "cartesia" else "deepgram_api_key")
    missing = sorted(f"VOICEBOT_{name.upper()}" for name in needed
                     if not getattr(settings, name).get_secret_value())
    if missing:
        raise ValueError(f"cloud providers need {', '.join(missing)}")


def _stt(profile: AgentProfile, settings: WorkerSettings, options: dict):
    from pipecat.services.deepgram.stt import DeepgramSTTService

    return DeepgramSTTService(
        api_key=settings.deepgram_api_key.get_secret_value(),
        settings=DeepgramSTTService.Settings(model=options.get("stt_model", "nova-3"),
                                             language=profile.language),
    )


def _llm(profile: AgentProfile, settings: WorkerSettings, options: dict):
    if options.get("llm", "groq") == "openai":
        from pipecat.services.openai.llm import OpenAILLMService

        return OpenAILLMService(
            api_key=settings.openai_api_key.get_secret_value(),
            settings=OpenAILLMService.Settings(model=options.get("llm_model", "gpt-4o-mini")),
        )
    from pipecat.services.groq.llm import GroqLLMService

    return GroqLLMService(
        api_key=settings.groq_api_key.get_secret_value(),
        settings=GroqLLMService.Settings(model=options.get("llm_model", "llama-3.3-70b-versatile")),
    )


def _tts(profile: AgentProfile, settings: WorkerSettings, options: dict):
    if options.get("tts", "deepgram") == "cartesia":
        from pipecat.services.cartesia.tts import CartesiaTTSService

        return CartesiaTTSService(
            api_key=settings.cartesia_api_key.get_secret_value(),
            settings=CartesiaTTSService.Settings(voice=profile.voice or options.get("tts_voice", "")),
        )
    from pipecat.services.deepgram.tts import DeepgramTTSService

    return DeepgramTTSService(
        api_key=settings.deepgram_api_key.get_secret_value(),
        settings=DeepgramTTSService.Settings(voice=profile.voice or options.get("tts_voice",
                                                                                 "aura-2-thalia-en")),
    )
