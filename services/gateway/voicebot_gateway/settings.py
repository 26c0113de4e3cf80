"""Gateway settings (environment, prefix VOICEBOT_)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from voicebot_core.settings import CommonSettings


class GatewaySettings(CommonSettings):
    # checked at load outside development mode (voicebot_core.settings)
    secrets_in_use: ClassVar[tuple[str, ...]] = ("twilio_auth_token", "stream_ticket_secret")

    gateway_host: str = "0.0.0.0"
    gateway_port: int = 8080
    gateway_public_base_url: str = Field(
        "",
        description="Public https URL Twilio uses to reach us. Empty: rebuild it from "
        "X-Forwarded-Proto/Host (trusted ingress) or the Host header.",
    )
    gateway_drain_timeout_s: float = Field(3600.0, description="SIGTERM: longest wait for open streams.")
    gateway_max_body_bytes: int = Field(64 * 1024, description="Largest webhook body accepted.")
    gateway_worker_connect_timeout_s: float = Field(3.0, description="Opening the stream to a bot-worker.")
    gateway_worker_attempts: int = Field(3, description="Workers tried before the caller gets the busy message.")
    gateway_busy_message: str = "Sorry, all of our agents are busy right now. Please call again later."
    gateway_validate_signatures: bool = Field(True, description="Never disable in production.")
    gateway_redis_max_connections: int = Field(
        100, description="Redis connections per gateway process; more requests wait for one.")
    gateway_media_path: Literal["relay", "asgi"] = Field(
        "relay",
        description="relay: media streams relayed frame by frame at the byte level (media_relay.py); "
        "asgi: through the FastAPI route (stream_relay.py), several times the CPU per stream.",
    )
