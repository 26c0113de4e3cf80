"""Emulator settings (env prefix VOICEBOT_EMULATOR_; the Twilio account also reads VOICEBOT_TWILIO_*)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from voicebot_core.settings import CommonSettings


class EmulatorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="VOICEBOT_EMULATOR_", env_file=None, extra="ignore")

    # The same account as every other service: tests and deployments set VOICEBOT_TWILIO_* once.
    twilio_account_sid: str = Field(
        "AC00000000000000000000000000000000",
        validation_alias=AliasChoices("VOICEBOT_EMULATOR_TWILIO_ACCOUNT_SID", "VOICEBOT_TWILIO_ACCOUNT_SID",
                                      "twilio_account_sid"),
        description="Account SID the REST API accepts and webhooks carry.",
    )
    twilio_auth_token: SecretStr = Field(
        SecretStr("emulator-auth-token"),
        validation_alias=AliasChoices("VOICEBOT_EMULATOR_TWILIO_AUTH_TOKEN", "VOICEBOT_TWILIO_AUTH_TOKEN",
                                      "twilio_auth_token"),
        description="REST password and webhook signing key.",
    )
    # logging follows the deployment-wide VOICEBOT_LOG_* unless VOICEBOT_EMULATOR_LOG_* says otherwise
    log_level: str = Field("INFO", validation_alias=AliasChoices(
        "VOICEBOT_EMULATOR_LOG_LEVEL", "VOICEBOT_LOG_LEVEL", "log_level"), description="Root log level.")
    log_json: bool = Field(True, validation_alias=AliasChoices(
        "VOICEBOT_EMULATOR_LOG_JSON", "VOICEBOT_LOG_JSON", "log_json"), description="JSON log lines.")
    host: str = Field("127.0.0.1", description="Listen address.")
    port: int = Field(8060, description="Listen port.")
    public_base_url: str = Field("", description="Base URL clients use for us (absolute heard_wav_url in reports).")
    voice_url: str = Field("http://127.0.0.1:8080/twilio/voice", description="Voice webhook for inbound calls.")
    status_callback_url: str = Field("", description="Status callback for inbound calls (empty: none).")
    ring_seconds: float = Field(1.0, description="How long an outbound call rings before it is answered.")
    no_answer_seconds: float = Field(3.0, description="Ring time before a no-answer number gives up.")
    recordings_dir: Path = Field(Path(tempfile.gettempdir()) / "voicebot-emulator",
                                 description="Where heard.wav files and call recordings are written.")
    script_linger_seconds: float = Field(
        15.0, description="After a caller script ends without hanging up, wait this long for the server."
    )
