"""Dialer settings (env prefix VOICEBOT_), shared by the REST API and the Celery workers."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from voicebot_core.settings import CommonSettings, env_name, is_public_default
from voicebot_dialer.api_keys import parse_keys

PLACING_MARGIN_S = 1.0  # between marking a job 'placing' and the create request, and clock steps


class DialerSettings(CommonSettings):
    # checked at load outside development mode (voicebot_core.settings); API keys below
    secrets_in_use: ClassVar[tuple[str, ...]] = ("twilio_auth_token", "stream_ticket_secret",
                                                 "dialer_webhook_secret")

    dialer_host: str = Field("0.0.0.0", description="REST API bind address.")
    dialer_port: int = Field(8070, description="REST API port.")
    dialer_api_keys: str = Field(
        "", description="Comma-separated Bearer API keys, each `<key>` or `<key>:<scope>` (scopes read, place, "
        "admin; no scope: place). Empty, with no keys in the file either, refuses every call.")
    dialer_api_keys_file: str = Field(
        "", description="File of more keys (same entries, also one per line, `#` comment lines), re-read "
        "when it changes (checked at most once per second); empty: none.")
    dialer_max_request_bytes: int = Field(2_000_000, description="Largest accepted request body.")
    dialer_console_enabled: bool = Field(True, description="Serve the operators' console at /console/ (static "
                                         "pages that call this API with the operator's key).")
    dialer_max_campaign_contacts: int = Field(100_000, description="Most contacts in one campaign.")
    gateway_public_base_url: str = Field(
        "http://127.0.0.1:8080", description="Gateway as Twilio reaches it (the same variable the gateway reads)."
    )
    dialer_from_numbers: str = Field("+15550000001", description="Comma-separated default caller-ID pool.")
    dialer_default_profile: str = Field("", description="Agent profile when a request names none.")
    dialer_account_cps: float = Field(1.0, description="Calls per second for the whole Twilio account.")
    dialer_number_cps: float = Field(1.0, description="Calls per second per caller-ID number.")
    dialer_rate_window_s: float = Field(
        1.1, description="How long each granted token counts against its CPS limit: Twilio's 1 s plus a safety "
        "margin (DIALER_RATE_WINDOW_S - 1 - DIALER_RATE_SEND_WITHIN_S absorbs variation in network delay; see "
        "docs/dialer-api.md, Pacing).")
    dialer_rate_send_within_s: float = Field(
        0.03, ge=0.005, description="A create is written to Twilio's connection at most this long after its token "
        "was granted; an older token is replaced by a fresh one first.")
    dialer_require_capacity: bool = Field(True, description="Place only when a bot-worker slot is free.")
    dialer_ring_timeout_s: int = Field(30, description="Seconds Twilio lets the callee's phone ring.")
    dialer_amd_mode: str = Field("async", description="'async' (AsyncAmd callback) or 'sync' (TwiML).")
    dialer_record_calls: bool = Field(False, description="Ask Twilio to record placed calls.")
    dialer_default_max_attempts: int = Field(3, description="Attempts when a request sets none.")
    dialer_dispatch_interval_s: float = Field(0.05, description="How often workers look for due jobs.")
    dialer_dispatch_lease_s: float = Field(
        60.0, description="Re-dispatch a queued job after this long when no live worker holds it (a task lost in "
        "the broker); a job held by a dead worker is re-dispatched after DIALER_WORKER_LIVENESS_S.")
    dialer_worker_liveness_s: float = Field(
        4.0, gt=1.0, description="A dialer worker silent this long (it beats every second) is dead: the jobs it "
        "held are dispatched again, or looked up in Twilio at once if their create had started.")
    dialer_max_inflight: int = Field(50, description="Placement tasks queued but not started, at most.")
    dialer_placing_timeout_s: float = Field(30.0, description="Reconcile a job stuck in 'placing' after.")
    dialer_twilio_timeout_s: float = Field(
        0.0, ge=0, description="Total time one Twilio REST request may take (connect and answer); 0: "
        "DIALER_PLACING_TIMEOUT_S - 1, at most 10. Must end 1 s before the placing timeout, so the reconciler "
        "never looks for a call whose create is still in flight.")

    @model_validator(mode="after")
    def _twilio_timeout_before_placing_timeout(self) -> DialerSettings:
        # The reconciler takes 'no such call' as final only once no create can still be in flight.
        limit = self.dialer_placing_timeout_s - PLACING_MARGIN_S
        if limit <= 0 or self.twilio_timeout_s > limit:
            raise ValueError(
                f"{env_name('dialer_twilio_timeout_s')} ({self.twilio_timeout_s:g}s) must end at least "
                f"{PLACING_MARGIN_S:g}s before {env_name('dialer_placing_timeout_s')} "
                f"({self.dialer_placing_timeout_s:g}s): a create still in flight would be looked up as lost")
        return self

    @model_validator(mode="after")
    def _rate_margin_covers_send_delay(self) -> DialerSettings:
        # Two creates a token apart may be written up to send_within closer than their grants.
        if self.dialer_rate_window_s < 1.0 + self.dialer_rate_send_within_s:
            raise ValueError(
                f"{env_name('dialer_rate_window_s')} ({self.dialer_rate_window_s:g}s) must be at least 1 s plus "
                f"{env_name('dialer_rate_send_within_s')} ({self.dialer_rate_send_within_s:g}s), or two creates "
                "could reach Twilio within one second beyond the CPS limit")
        return self

    @property
    def twilio_timeout_s(self) -> float:
        return self.dialer_twilio_timeout_s or min(10.0, self.dialer_placing_timeout_s - PLACING_MARGIN_S)

    dialer_webhook_secret: SecretStr = Field(
        SecretStr("change-me-webhook-secret"),
        description="HMAC-SHA256 key signing event webhooks. The default is for development mode only.")
    dialer_webhook_retry_period_s: float = Field(
        86_400.0, gt=0, description="Event webhooks not answered 2xx are attempted again for this long after the "
        "first attempt (the last attempt falls on its end at the latest).")
    dialer_webhook_backoff_base_s: float = Field(1.0, gt=0, description="Longest wait before a webhook's first "
                                                 "retry; each next wait's bound doubles.")
    dialer_webhook_backoff_cap_s: float = Field(300.0, gt=0, description="Longest wait between two attempts "
                                                "of a webhook (waits are 50-100% of their bound).")
    dialer_metrics_host: str = Field("0.0.0.0", description="Celery worker metrics bind address.")
    dialer_metrics_port: int = Field(9808, description="Celery worker metrics port; 0 disables.")

    @field_validator("dialer_api_keys")
    @classmethod
    def _key_syntax(cls, value: str) -> str:
        parse_keys(value, f"{env_name('dialer_api_keys')} entry")  # names the entry, never the key
        return value

    def public_default_secrets(self) -> list[str]:
        """The shared check, and no API key may be a public placeholder (empty keys refuse every call)."""
        bad = super().public_default_secrets()
        if any(is_public_default(key) for key in self.api_keys):
            bad.append(env_name("dialer_api_keys"))
        return bad

    @property
    def stale_call_s(self) -> float:
        """A placed call still not on a bot-worker this long after placing has ended unheard of."""
        return self.dialer_ring_timeout_s + 120.0

    @property
    def api_keys(self) -> dict[str, str]:
        """Key -> scope of the setting's entries (the file's are voicebot_dialer.api_keys.ApiKeys')."""
        return parse_keys(self.dialer_api_keys)

    @property
    def from_numbers(self) -> list[str]:
        return [n.strip() for n in self.dialer_from_numbers.split(",") if n.strip()]


@lru_cache(maxsize=1)
def get_settings() -> DialerSettings:
    return DialerSettings()
