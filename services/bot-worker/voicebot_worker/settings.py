"""Bot-worker settings: `VOICEBOT_WORKER_<FIELD>` for the worker's own (fields named `worker_*`, as
the gateway's are `gateway_*` and the dialer's `dialer_*`), `VOICEBOT_<FIELD>` for the shared ones
(models folder, provider keys and everything in `CommonSettings`)."""

from __future__ import annotations

import os
import socket
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from voicebot_core.settings import CommonSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(CommonSettings):
    # checked at load outside development mode (voicebot_core.settings)
    secrets_in_use: ClassVar[tuple[str, ...]] = ("twilio_auth_token", "stream_ticket_secret")

    worker_id: str = Field(default_factory=_default_worker_id, description="Name in the worker registry.")
    worker_host: str = Field("127.0.0.1", description="Interface the worker binds to.")
    worker_port: int = Field(8090, description="HTTP/WebSocket port.")
    worker_advertise_url: str = Field("",
                                      description="ws://host:port the gateway dials; default ws://127.0.0.1:{port}.")
    worker_capacity: int = Field(4, ge=1, description="Concurrent calls this worker accepts.")
    worker_recording_segment_s: float = Field(
        5.0, gt=0, le=300, description="The stereo recording (caller left, bot right) is stored in segments of "
        "this many seconds as the call goes: a worker that dies loses at most the last one.")
    worker_heartbeat_interval_s: float = Field(2.0, gt=0, description="Registry heartbeat period.")
    worker_heartbeat_ttl_s: float = Field(10.0, gt=0, description="Registry entry lifetime without a heartbeat.")
    worker_drain_timeout_s: float = Field(600.0, ge=0, description="On SIGTERM, wait this long for live calls.")
    worker_call_end_retry_s: float = Field(
        120.0, ge=0, description="A call that ends while Redis is down or restarting stores its end (transcript, "
        "outcome, the slot's release) once Redis is back, retrying this long.")
    worker_stream_start_timeout_s: float = Field(10.0, gt=0, description="Wait this long for `connected`/`start`.")
    worker_idle_timeout_s: float | None = Field(None, description="Overrides every profile's idle_timeout_s.")
    # Tuned so `clear` leaves within 300 ms of the caller's first syllable (measured ~0.2 s): pipecat's
    # defaults (start 0.2 s, min_volume 0.6 on a slowly smoothed volume) take ~0.35 s on phone audio.
    worker_vad_start_secs: float = Field(0.08, gt=0, description="Speech needed before a caller turn starts.")
    worker_barge_in_min_speech_s: float = Field(
        0.3, ge=0, description="While the bot is audible, voice needed before the caller's speech interrupts it: "
        "shorter backchannels ('uh-huh'), coughs and line noise do not. The bot pauses at the voice's start and goes "
        "on after a backchannel.")
    worker_vad_stop_secs: float = Field(0.2, gt=0, description="Silence needed before a caller turn may end.")
    worker_vad_confidence: float = Field(0.7, gt=0, le=1, description="Silero speech probability threshold.")
    worker_vad_min_volume: float = Field(0.3, ge=0, le=1,
                                         description="Smoothed loudness a frame needs to count as speech.")
    worker_speech_timeout_s: float = Field(0.4, ge=0,
                                           description="speech_timeout turn detection: pause that ends a turn.")
    worker_quiet_audio_chunk_s: float = Field(
        0.2, gt=0, le=1, description="While the VAD hears no voice, the caller's audio goes down the pipeline in "
        "frames this long instead of 20 ms ones (the STT still gets every sample).")
    worker_audio_lead_s: float = Field(
        0.2, ge=0, le=2, description="Bot audio is written this far ahead of the caller's playback, so an event "
        "loop busy with other calls for less than that leaves no gap (a barge-in's `clear` drops it at once).")
    worker_pipeline_idle_timeout_s: float = Field(
        300.0, gt=0, description="End a call with no bot audio, caller speech or mark echo for this long.")
    # local providers (read by providers.local; empty = its own default / environment)
    models_dir: str = Field("", description="Local model weights (whisper, piper); default ~/.cache/voicebot/models.")
    worker_llm_base_url: str = Field("",
                                     description="OpenAI-compatible local LLM server; default http://127.0.0.1:8000/v1.")
    worker_preload_local_models: bool = Field(False,
                                              description="Load local STT/TTS models at start, not on the first call.")
    worker_prepare_phrases: bool = Field(
        True, description="At start, before registering, synthesise every profile's fixed phrases (greetings "
        "without {variables}, idle prompt and goodbye, goodbye, transfer message) with its TTS and play them "
        "from memory on calls. A cloud TTS costs one request per phrase per profile at every worker start.")
    # cloud providers (only read by providers.cloud)
    deepgram_api_key: SecretStr = Field(SecretStr(""), description="Deepgram STT/TTS key.")
    groq_api_key: SecretStr = Field(SecretStr(""), description="Groq LLM key.")
    openai_api_key: SecretStr = Field(SecretStr(""), description="OpenAI LLM key.")
    cartesia_api_key: SecretStr = Field(SecretStr(""), description="Cartesia TTS key.")

    @model_validator(mode="after")
    def _fill_advertise_url(self) -> WorkerSettings:
        if not self.worker_advertise_url:
            self.worker_advertise_url = f"ws://127.0.0.1:{self.worker_port}"
        return self
