"""Settings every service shares. Each service subclasses `CommonSettings` once.

Secrets: the built-in values of the secrets below are public development defaults (they make the
emulator, `make demo`/`make up` and the tests work without configuration). A service names the
secrets it uses in `secrets_in_use`; outside development mode (`VOICEBOT_DEV_MODE=true`) it refuses
to load its settings when one of them is empty or a public default, naming the variables (never
their values), so `python -m <service>` exits non-zero before it serves anything.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voicebot_core.redis_client import RedisTarget

ENV_PREFIX = "VOICEBOT_"
DEV_MODE_ENV = "VOICEBOT_DEV_MODE"

# Development defaults of the secrets, published in this repository: never valid outside development mode.
PUBLIC_DEFAULT_SECRETS = frozenset({
    "emulator-auth-token",
    "change-me-stream-ticket-secret",
    "change-me-webhook-secret",
})
PLACEHOLDER_PREFIX = "change-me"  # documentation examples (`change-me-key`, ...) are public too


def is_public_default(value: str) -> bool:
    """True for an empty secret, a built-in development default or a `change-me...` placeholder."""
    text = value.strip()
    return not text or text in PUBLIC_DEFAULT_SECRETS or text.lower().startswith(PLACEHOLDER_PREFIX)


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


_HOSTNAME = re.compile(r"[A-Za-z0-9_.-]+")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`h1:p1,h2:p2` (IPv6 as `[::1]:26379`) as (host, port) pairs; ValueError naming the bad entry."""
    found = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        host = host[1:-1] if bracketed else host
        valid_host = _IPV6.fullmatch(host) if bracketed else _HOSTNAME.fullmatch(host)
        if not sep or not valid_host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"VOICEBOT_REDIS_SENTINELS: {entry!r} is not host:port (expected a comma-separated "
                             "list such as `sentinel-0:26379,sentinel-1:26379`)")
        found.append((host, int(port)))
    if text.strip() and not found:
        raise ValueError("VOICEBOT_REDIS_SENTINELS lists no host:port")
    return tuple(found)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class CommonSettings(BaseSettings):
    """Environment-driven settings (prefix `VOICEBOT_`)."""

    # hide_input_in_errors: a validation error never prints the values it was given (secrets among them)
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore",
                                      hide_input_in_errors=True)

    # Fields holding the secrets this service uses; checked at load outside development mode.
    secrets_in_use: ClassVar[tuple[str, ...]] = ()

    dev_mode: bool = Field(
        False,
        description="Development mode: allow the built-in public development secrets (and empty ones). "
        "Set by the emulator stacks (`make demo`, `make up`, the tests); never in production.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding registry, calls and queues.")
    redis_prefix: str = Field("voicebot", description="Namespace for every Redis key this deployment owns.")
    redis_sentinels: str = Field(
        "", description="Comma-separated host:port of Redis Sentinels (`sentinel-0:26379,sentinel-1:26379`). "
        "Set: every client asks them for the primary of VOICEBOT_REDIS_SENTINEL_MASTER and follows a failover; "
        "VOICEBOT_REDIS_URL then gives only the primary's password, username and db (its host is ignored), "
        "and the dialer's Celery broker becomes `sentinel://` (unless VOICEBOT_DIALER_BROKER_URL is set).")
    redis_sentinel_master: str = Field("mymaster", description="Name of the primary the Sentinels watch.")
    redis_sentinel_password: SecretStr = Field(
        SecretStr(""), description="Password of the Sentinels themselves (their `requirepass`); empty: none.")
    redis_failover_retry_s: float = Field(
        15.0, gt=0, description="With Sentinels: how long a Redis command retries connection errors (the primary "
        "down, a failover under way) before it fails; cover the Sentinels' down-after-milliseconds plus the "
        "election.")
    redis_replica_ack_ms: int = Field(
        200, ge=0, description="Dial job creations and state changes wait up to this long (WAIT 1) for a "
        "replica to hold them, when the primary has one, so a failover cannot undo an acknowledged job or the "
        "`placing` state written before a call is placed; 0: never wait. Asynchronous replication otherwise.")
    twilio_account_sid: str = Field("AC00000000000000000000000000000000", description="Twilio account SID.")
    twilio_auth_token: SecretStr = Field(
        SecretStr("emulator-auth-token"),
        description="Signs webhooks. The default is the emulator's, for development mode only.",
    )
    twilio_api_base_url: str = Field(
        "https://api.twilio.com",
        description="Twilio REST base URL; point it at the emulator for local development and tests.",
    )
    stream_ticket_secret: SecretStr = Field(
        SecretStr("change-me-stream-ticket-secret"),
        description="HMAC key for the per-call tickets the gateway hands to bot-workers (and the dialer's "
        "outbound TwiML URL tokens). The default is for development mode only.",
    )
    agent_profiles_path: str = Field("config/agent-profiles.yaml", description="Agent profiles YAML file.")
    transfer_sip_hosts: str = Field("", description="Comma-separated SIP hosts a call may be transferred to "
                                    "(sip:user@host); empty refuses SIP transfer targets "
                                    "(voicebot_core.transfer_targets).")
    log_level: str = Field("INFO", description="Root log level.")
    log_json: bool = Field(True, description="Structured JSON logs (one object per line).")
    mask_phone_numbers: bool = Field(True, description="Mask phone numbers in logs.")
    dialer_broker_url: str = Field("", description="Celery broker of the dialer; empty means redis_url.")
    dialer_broker_prefix: str = Field("", description="Key prefix for Celery's Redis keys (shared Redis, tests).")
    # Recordings and transcripts (voicebot_core.object_store, voicebot_core.call_media)
    storage_backend: Literal["filesystem", "s3"] = Field(
        "filesystem", description="Where recordings and transcripts are stored: `s3` (any S3-compatible "
        "service) or `filesystem` (a directory; local development, or a volume every worker and the "
        "dialer API mount).")
    storage_dir: str = Field("call-data", description="Root directory of the filesystem backend.")
    storage_s3_endpoint: str = Field("", description="host[:port] of the S3-compatible endpoint.")
    storage_s3_secure: bool = Field(True, description="HTTPS to the S3 endpoint.")
    storage_s3_region: str = Field("", description="S3 region (empty: the client asks the endpoint).")
    storage_s3_bucket: str = Field("", description="S3 bucket of recordings and transcripts.")
    storage_s3_prefix: str = Field("", description="Key prefix inside the bucket.")
    storage_s3_access_key: SecretStr = Field(SecretStr(""), description="S3 access key.")
    storage_s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key.")
    call_data_retention_days: float = Field(
        30, gt=0, description="Call records, events and transcripts expire from Redis after this many days; "
        "the retention job (`python -m voicebot_dialer.retention`) deletes stored recordings and "
        "transcripts older than it.")

    @property
    def redis_sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        return parse_sentinels(self.redis_sentinels)

    @property
    def redis_target(self) -> RedisTarget:
        """What voicebot_core.redis_client.connect/connect_sync take: the URL, or the Sentinels."""
        return RedisTarget(self.redis_url, self.redis_sentinel_addresses, self.redis_sentinel_master,
                           self.redis_sentinel_password.get_secret_value(), self.redis_failover_retry_s)

    @property
    def broker_url(self) -> str:
        """The dialer's Celery broker: VOICEBOT_DIALER_BROKER_URL, else Redis (through the Sentinels:
        `sentinel://[auth@]h:p/db;sentinel://...`, the primary's auth and db from VOICEBOT_REDIS_URL)."""
        if self.dialer_broker_url or not self.redis_sentinels:
            return self.dialer_broker_url or self.redis_url
        parts = urlsplit(self.redis_url)
        auth = parts.netloc.rpartition("@")[0]
        auth = f"{auth}@" if auth else ""
        db = parts.path if parts.path not in ("", "/") else "/0"
        return ";".join(f"sentinel://{auth}{_host_for_url(host)}:{port}{db}"
                        for host, port in self.redis_sentinel_addresses)

    @property
    def broker_sentinel_options(self) -> dict[str, Any]:
        """Transport options a `sentinel://` broker needs (kombu: master name, the Sentinels' own auth)."""
        if not self.broker_url.startswith("sentinel://"):
            return {}
        options: dict[str, Any] = {"master_name": self.redis_sentinel_master}
        if password := self.redis_sentinel_password.get_secret_value():
            options["sentinel_kwargs"] = {"password": password}
        return options

    @property
    def call_data_retention_s(self) -> int:
        return int(self.call_data_retention_days * 24 * 3600)

    def public_default_secrets(self) -> list[str]:
        """The variables of `secrets_in_use` that are empty or a public default (names, not values)."""
        bad = []
        for field in self.secrets_in_use:
            value = getattr(self, field)
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            if is_public_default(text):
                bad.append(env_name(field))
        return bad

    @model_validator(mode="after")
    def _check_sentinels(self) -> CommonSettings:
        parse_sentinels(self.redis_sentinels)
        if self.redis_sentinels and not self.redis_sentinel_master.strip():
            raise ValueError("VOICEBOT_REDIS_SENTINELS is set: VOICEBOT_REDIS_SENTINEL_MASTER must name the primary")
        return self

    @model_validator(mode="after")
    def _require_s3_settings(self) -> CommonSettings:
        if self.storage_backend != "s3":
            return self
        missing = [env_name(field) for field in ("storage_s3_endpoint", "storage_s3_bucket",
                                                 "storage_s3_access_key", "storage_s3_secret_key")
                   if not (v.get_secret_value() if isinstance(v := getattr(self, field), SecretStr) else v)]
        if missing:
            raise ValueError(f"VOICEBOT_STORAGE_BACKEND=s3 needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _refuse_public_default_secrets(self) -> CommonSettings:
        if self.dev_mode:
            return self
        bad = self.public_default_secrets()
        if bad:
            verb = "is" if len(bad) == 1 else "are"
            raise ValueError(
                f"{', '.join(bad)} {verb} empty or a public development default: set "
                f"{'it' if len(bad) == 1 else 'each'} to a secret of your own (a long random string, e.g. "
                "`openssl rand -hex 32`; the Twilio auth token from the Twilio Console), or set "
                f"{DEV_MODE_ENV}=true on a development machine to allow the built-in defaults")
        return self


S = TypeVar("S", bound=CommonSettings)


def load_settings(cls: type[S]) -> S:
    """Settings for a service's entry point: from the environment, or exit non-zero with the
    validation error (which names variables, never values) instead of a traceback."""
    try:
        return cls()
    except ValidationError as exc:
        raise SystemExit(f"{cls.__name__}: refusing to start: {exc}") from None
