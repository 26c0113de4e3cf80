"""Bot-worker settings (environment variables with the VOICEBOT_ prefix)."""

from __future__ import annotations

import os
import socket

from pydantic import AliasChoices, Field, SecretStr, model_validator

from voicebot_core.settings import CommonSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _worker_env(field: str) -> AliasChoices:
    """Worker-only settings read VOICEBOT_WORKER_<FIELD>, like the gateway's and dialer's own
    prefixes; the plain field name still works for code that builds settings directly."""
    return AliasChoices(f"VOICEBOT_WORKER_{field.upper()}", field)


class WorkerSettings(CommonSettings):
    worker_id: str = Field(default_factory=_default_worker_id, description="Name in the worker registry.")
    host: str = Field(
        "127.0.0.1", description="Interface the worker binds to.",
        validation_alias=_worker_env("host"),
    )
    port: int = Field(
        8090, description="HTTP/WebSocket port.",
        validation_alias=_worker_env("port"),
    )
    advertise_url: str = Field(
        "", description="ws://host:port the gateway dials; default ws://127.0.0.1:{port}.",
        validation_alias=_worker_env("advertise_url"),
    )
    capacity: int = Field(
        4, ge=1, description="Concurrent calls this worker accepts.",
        validation_alias=_worker_env("capacity"),
    )
    recordings_dir: str = Field(
        "recordings", description="Stereo WAV per call: caller left, bot right.",
        validation_alias=_worker_env("recordings_dir"),
    )
    heartbeat_interval_s: float = Field(
        2.0, gt=0, description="Registry heartbeat period.",
        validation_alias=_worker_env("heartbeat_interval_s"),
    )
    heartbeat_ttl_s: float = Field(
        10.0, gt=0, description="Registry entry lifetime without a heartbeat.",
        validation_alias=_worker_env("heartbeat_ttl_s"),
    )
    drain_timeout_s: float = Field(
        600.0, ge=0, description="On SIGTERM, wait this long for live calls.",
        validation_alias=_worker_env("drain_timeout_s"),
    )
    stream_start_timeout_s: float = Field(
        10.0, gt=0, description="Wait this long for `connected`/`start`.",
        validation_alias=_worker_env("stream_start_timeout_s"),
    )
    idle_timeout_s: float | None = Field(
        None, description="Overrides every profile's idle_timeout_s.",
        validation_alias=_worker_env("idle_timeout_s"),
    )
    # Tuned so `clear` leaves within 300 ms of the caller's first syllable (measured ~0.2 s): pipecat's
    # defaults (start 0.2 s, min_volume 0.6 on a slowly smoothed volume) take ~0.35 s on phone audio.
    vad_start_secs: float = Field(
        0.08, gt=0, description="Speech needed before a caller turn starts.",
        validation_alias=_worker_env("vad_start_secs"),
    )
    vad_stop_secs: float = Field(
        0.2, gt=0, description="Silence needed before a caller turn may end.",
        validation_alias=_worker_env("vad_stop_secs"),
    )
    vad_confidence: float = Field(
        0.7, gt=0, le=1, description="Silero speech probability threshold.",
        validation_alias=_worker_env("vad_confidence"),
    )
    vad_min_volume: float = Field(
        0.3, ge=0, le=1, description="Smoothed loudness a frame needs to count as speech.",
        validation_alias=_worker_env("vad_min_volume"),
    )
    speech_timeout_s: float = Field(
        0.4, ge=0, description="speech_timeout turn detection: pause that ends a turn.",
        validation_alias=_worker_env("speech_timeout_s"),
    )
    pipeline_idle_timeout_s: float = Field(
        300.0, gt=0, description="Cancel a pipeline with no activity.",
        validation_alias=_worker_env("pipeline_idle_timeout_s"),
    )
    # local providers (read by providers.local; empty = its own default / environment)
    models_dir: str = Field("", description="Local model weights (whisper, piper); default ~/.cache/voicebot/models.")
    llm_base_url: str = Field(
        "", description="OpenAI-compatible local LLM server; default http://127.0.0.1:8000/v1.",
        validation_alias=_worker_env("llm_base_url"),
    )
    preload_local_models: bool = Field(
        False, description="Load local STT/TTS models at start, not on the first call.",
        validation_alias=_worker_env("preload_local_models"),
    )
    # cloud providers (only read by providers.cloud)
    deepgram_api_key: SecretStr = Field(SecretStr(""), description="Deepgram STT/TTS key.")
    groq_api_key: SecretStr = Field(SecretStr(""), description="Groq LLM key.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="OpenAI LLM key.")
    cartesia_api_key: SecretStr = Field(SecretStr(""), description="Cartesia TTS key.")

    @model_validator(mode="after")
    def _fill_advertise_url(self) -> WorkerSettings:
        if not self.advertise_url:
            self.advertise_url = f"ws://127.0.0.1:{self.port}"
        return self
