"""Settings every service shares. Each service subclasses `CommonSettings` once."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Environment-driven settings (prefix `VOICEBOT_`)."""

    model_config = SettingsConfigDict(env_prefix="VOICEBOT_", env_file=None, extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding registry, calls and queues.")
    redis_prefix: str = Field("voicebot", description="Namespace for every Redis key this deployment owns.")
    twilio_account_sid: str = Field("AC00000000000000000000000000000000", description="Twilio account SID.")
    twilio_auth_token: SecretStr = Field(SecretStr("emulator-auth-token"), description="Signs webhooks.")
    twilio_api_base_url: str = Field(
        "https://api.twilio.com",
        description="Twilio REST base URL; point it at the emulator for local development and tests.",
    )
    stream_ticket_secret: SecretStr = Field(
        SecretStr("change-me-stream-ticket-secret"),
        description="HMAC key for the per-call tickets the gateway hands to bot-workers.",
    )
    agent_profiles_path: str = Field("config/agent-profiles.yaml", description="Agent profiles YAML file.")
    log_level: str = Field("INFO", description="Root log level.")
    log_json: bool = Field(True, description="Structured JSON logs (one object per line).")
    mask_phone_numbers: bool = Field(True, description="Mask phone numbers in logs.")
    dialer_broker_url: str = Field("", description="Celery broker of the dialer; empty means redis_url.")
    dialer_broker_prefix: str = Field("", description="Key prefix for Celery's Redis keys (shared Redis, tests).")

    @property
    def broker_url(self) -> str:
        return self.dialer_broker_url or self.redis_url
