"""Gateway settings (environment, prefix VOICEBOT_)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from voicebot_core.settings import CommonSettings
from voicebot_core.signatures import parse_proxies


class GatewaySettings(CommonSettings):
    # checked at load outside development mode (voicebot_core.settings)
    secrets_in_use: ClassVar[tuple[str, ...]] = ("twilio_auth_token", "stream_ticket_secret")

    gateway_host: str = "0.0.0.0"
    gateway_port: int = 8080
    gateway_public_base_url: str = Field(
        "",
        description="Public https URL Twilio uses to reach us; set, it is always the URL signatures are "
        "checked against. Empty: rebuild it from the request's scheme and Host header, or from "
        "X-Forwarded-Proto/Host when the request comes from one of gateway_trusted_proxies.",
    )
    gateway_trusted_proxies: str = Field(
        "",
        description="Comma-separated IP addresses and CIDR networks of the proxies (ingress controllers) whose "
        "X-Forwarded-Proto/Host/For headers are believed, by the gateway's signed-URL rebuild and by uvicorn. "
        "Empty: nobody's; the headers of any other peer are ignored.",
    )
    gateway_drain_timeout_s: float = Field(3600.0, description="SIGTERM: longest wait for open streams.")
    gateway_drain_linger_s: float = Field(
        1.0, ge=0, description="SIGTERM: /readyz fails at once, but the gateway keeps taking connections this "
        "long, so a load balancer polling it takes it out of rotation before it stops listening; a stream that "
        "arrives meanwhile (its webhook answered here or on another gateway) is relayed and waited for.")
    gateway_liveness_timeout_s: float = Field(
        5.0, gt=0, description="A gateway that has not beaten into Redis for this long is dead (kill -9, OOM, a "
        "lost node): another gateway marks the calls it was relaying failed. Every gateway beats four times in it.")
    gateway_max_body_bytes: int = Field(64 * 1024, description="Largest webhook body accepted.")
    gateway_worker_connect_timeout_s: float = Field(3.0, description="Opening the stream to a bot-worker.")
    gateway_worker_attempts: int = Field(
        3, description="Workers tried (a refused upgrade or a 1013 close counts) before the caller gets the "
        "busy message; a re-attach after a worker broke gets as many again.")
    gateway_worker_liveness_timeout_s: float = Field(
        1.5, gt=0, description="A worker stream that has sent nothing, not even a pong to the pings the gateway "
        "sends every third of this, is declared lost this long after the last thing it sent (at the latest) and "
        "the call is re-attached to another worker. A worker whose event loop stalls longer loses its calls.")
    gateway_worker_start_grace_s: float = Field(
        10.0, ge=0, description="For this long after a worker takes a call, its silence is not a loss: it may "
        "block while it builds the call's pipeline (a provider that loads a model per call). A worker that "
        "freezes within it is noticed when it ends, at the latest.")
    gateway_outbound_hold_s: float = Field(
        150.0, description="A dialer's hold on a slot for an outbound call counts against other calls this long "
        "(as the dialer's stale window: dialer_ring_timeout_s + 120 s).")
    gateway_busy_message: str = "Sorry, all of our agents are busy right now. Please call again later."
    gateway_redis_timeout_s: float = Field(
        2.0, gt=0, description="Longest wait on Redis while a call is being set up (the voice webhook, the worker "
        "reservation). Past it, or on a Redis error, the caller hears the busy message rather than silence.")
    gateway_callback_retry_s: float = Field(
        120.0, ge=0, description="A status or AMD callback that Redis (or the dialer's broker) cannot take is "
        "answered 204 and applied in the background, retried this long: Twilio sends each callback once.")
    gateway_validate_signatures: bool = Field(True, description="Never disable in production.")
    gateway_redis_max_connections: int = Field(
        100, description="Redis connections per gateway process; more requests wait for one.")
    gateway_media_path: Literal["relay", "asgi"] = Field(
        "relay",
        description="relay: media streams relayed frame by frame at the byte level (media_relay.py); "
        "asgi: through the FastAPI route (stream_relay.py), several times the CPU per stream.",
    )

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        parse_proxies(value)  # ValueError naming the entry that is not an address or network
        return value

    @property
    def trusted_proxies(self) -> list[str]:
        """gateway_trusted_proxies as a list (uvicorn's forwarded_allow_ips)."""
        return [item.strip() for item in self.gateway_trusted_proxies.split(",") if item.strip()]
