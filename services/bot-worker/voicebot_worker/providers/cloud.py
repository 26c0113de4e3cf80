"""Cloud providers through pipecat's own services: Deepgram STT, Groq/OpenAI LLM, Deepgram/Cartesia TTS.

Building them opens no connection (they connect when the pipeline starts), so a profile can be
validated offline. provider_options:

- llm (groq|openai), llm_model, llm_base_url (any OpenAI-compatible endpoint: Groq and OpenAI are
  both reached through pipecat's OpenAI client; e.g. a vLLM, Ollama or llama.cpp server), and the
  optional temperature, max_tokens;
- stt (deepgram|whisper), stt_model; tts (deepgram|cartesia|hibari|piper), tts_voice.
  whisper, hibari and piper are the offline stack's (providers/local.py): a profile may pair a cloud
  LLM with speech on this machine, and then needs only the LLM's key.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from voicebot_core.profiles import AgentProfile
from voicebot_worker.providers import ProviderServices

if TYPE_CHECKING:
    from voicebot_worker.settings import WorkerSettings

log = logging.getLogger(__name__)

LLMS = ("groq", "openai")
STTS = ("deepgram", "whisper")
TTSS = ("deepgram", "cartesia", "hibari", "piper")
LOCAL_SPEECH_SAMPLE_RATE = 16000  # whisper's rate (providers/local.py)


def _choice(options: dict, name: str, choices: tuple[str, ...]) -> str:
    value = str(options.get(name, choices[0]))
    if value not in choices:
        raise ValueError(f"cloud provider option {name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def required_keys(options: dict[str, Any]) -> list[str]:
    """The VOICEBOT_* key variables these provider_options need (sorted)."""
    needed = {_choice(options, "llm", LLMS) + "_api_key"}
    if _choice(options, "stt", STTS) == "deepgram":
        needed.add("deepgram_api_key")
    tts = _choice(options, "tts", TTSS)
    if tts in ("deepgram", "cartesia"):
        needed.add(f"{tts}_api_key")
    return sorted(f"VOICEBOT_{name.upper()}" for name in needed)


def build_cloud_services(profile: AgentProfile, settings: WorkerSettings) -> ProviderServices:
    options = profile.provider_options
    _require_keys(settings, options)
    stt = _stt(profile, settings, options)
    local_speech = _choice(options, "stt", STTS) == "whisper"
    return ProviderServices(
        stt=stt,
        llm=_llm(profile, settings, options),
        tts=_tts(profile, settings, options),
        pipeline_sample_rate=LOCAL_SPEECH_SAMPLE_RATE if local_speech else 8000,
    )


def _require_keys(settings: WorkerSettings, options: dict) -> None:
    missing = [name for name in required_keys(options)
               if not getattr(settings, name.removeprefix("VOICEBOT_").lower()).get_secret_value()]
    if missing:
        raise ValueError(f"cloud providers need {', '.join(missing)}")


def _stt(profile: AgentProfile, settings: WorkerSettings, options: dict):
    if _choice(options, "stt", STTS) == "whisper":
        from voicebot_worker.providers.local import LocalWhisperSTTService, whisper_model_dir

        return LocalWhisperSTTService(whisper_model_dir(settings))
    from pipecat.services.deepgram.stt import DeepgramSTTService

    return DeepgramSTTService(
        api_key=settings.deepgram_api_key.get_secret_value(),
        settings=DeepgramSTTService.Settings(model=options.get("stt_model", "nova-3"),
                                             language=profile.language),
    )


def _llm_settings(cls: Any, options: dict, default_model: str) -> Any:
    fields: dict[str, Any] = {"model": options.get("llm_model", default_model)}
    if "temperature" in options:
        fields["temperature"] = float(options["temperature"])
    if "max_tokens" in options:
        fields["max_tokens"] = int(options["max_tokens"])
    return cls.Settings(**fields)


def _llm(profile: AgentProfile, settings: WorkerSettings, options: dict):
    base_url = str(options.get("llm_base_url", "") or "")
    extra = {"base_url": base_url} if base_url else {}
    if _choice(options, "llm", LLMS) == "openai":
        from pipecat.services.openai.llm import OpenAILLMService

        llm_settings = _llm_settings(OpenAILLMService, options, "gpt-4o-mini")
        service = OpenAILLMService(api_key=settings.openai_api_key.get_secret_value(), settings=llm_settings,
                                   **extra)
    else:
        from pipecat.services.groq.llm import GroqLLMService

        llm_settings = _llm_settings(GroqLLMService, options, "llama-3.3-70b-versatile")
        service = GroqLLMService(api_key=settings.groq_api_key.get_secret_value(), settings=llm_settings,
                                 **extra)
    log.info("agent profile %s: LLM %s model %s at %s", profile.name, options.get("llm", "groq"),
             llm_settings.model, base_url or "the provider's API")
    return service


def _tts(profile: AgentProfile, settings: WorkerSettings, options: dict):
    tts = _choice(options, "tts", TTSS)
    if tts == "hibari":
        from voicebot_worker.providers.local import HibariTTSService

        return HibariTTSService()
    if tts == "piper":
        from voicebot_worker.providers.local import build_piper_tts

        return build_piper_tts(settings)
    if tts == "cartesia":
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
