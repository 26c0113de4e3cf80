"""What `make up` and `make demo` take from the environment and an optional `.env` file: your
Twilio account, the public base URL (an https tunnel to the gateway), provider keys and the agent
profile that answers. The environment wins over `.env`; `.env.example` documents every variable.

Without Twilio credentials the stack plays against the Twilio emulator as always. With them, the
services talk to the real Twilio REST API (or to `VOICEBOT_TWILIO_API_BASE_URL`, e.g. a regional
host; the value `emulator` keeps your credentials but uses the local emulator: a dry run).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values

from voicebot_core.profiles import AgentProfiles
from voicebot_devstack.processes import ROOT
from voicebot_devstack.stack import StackConfig

ENV_FILE = ROOT / ".env"
DEFAULT_PROFILES = ROOT / "config" / "agent-profiles.yaml"
TWILIO_API = "https://api.twilio.com"
EMULATOR = "emulator"
ACCOUNT_SID_PATTERN = re.compile(r"^AC[0-9a-fA-F]{32}$")

# variable -> the unprefixed names the tutorials' .env files use, accepted too
ALIASES: dict[str, tuple[str, ...]] = {
    "VOICEBOT_TWILIO_ACCOUNT_SID": ("TWILIO_ACCOUNT_SID",),
    "VOICEBOT_TWILIO_AUTH_TOKEN": ("TWILIO_AUTH_TOKEN",),
    "VOICEBOT_DEEPGRAM_API_KEY": ("DEEPGRAM_API_KEY",),
    "VOICEBOT_GROQ_API_KEY": ("GROQ_API_KEY",),
    "VOICEBOT_OPENAI_API_KEY": ("OPENAI_API_KEY",),
    "VOICEBOT_CARTESIA_API_KEY": ("CARTESIA_API_KEY",),
}
PROVIDER_KEYS = ("VOICEBOT_DEEPGRAM_API_KEY", "VOICEBOT_GROQ_API_KEY", "VOICEBOT_OPENAI_API_KEY",
                 "VOICEBOT_CARTESIA_API_KEY")
# read here and handed to the services by the stack itself, not passed through
STACK_OWNED = frozenset({"VOICEBOT_TWILIO_ACCOUNT_SID", "VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_TWILIO_API_BASE_URL",
                         "VOICEBOT_GATEWAY_PUBLIC_BASE_URL", "VOICEBOT_AGENT_PROFILE",
                         "VOICEBOT_AGENT_PROFILES_PATH"})


class ConfigError(ValueError):
    """The environment or .env asks for something that cannot work; the message says what."""


def read_values(env_file: Path | None = ENV_FILE, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The VOICEBOT_* values from `env_file` overlaid by the environment, unprefixed aliases resolved;
    empty values count as unset."""
    environ = os.environ if environ is None else environ
    from_file = {k: v for k, v in (dotenv_values(env_file) if env_file and env_file.is_file() else {}).items()
                 if v is not None}
    merged = {**from_file, **environ}
    values = {k: v.strip() for k, v in merged.items() if k.startswith("VOICEBOT_") and v.strip()}
    for name, aliases in ALIASES.items():
        if name not in values:
            alias = next((a for a in aliases if merged.get(a, "").strip()), None)
            if alias:
                values[name] = merged[alias].strip()
    return values


def mask(secret: str) -> str:
    """'****' plus the last 4 characters of a long secret, and its length: enough to tell keys apart."""
    if not secret:
        return "not set"
    return f"****{secret[-4:]} ({len(secret)} chars)" if len(secret) >= 12 else f"**** ({len(secret)} chars)"


def mask_sid(sid: str) -> str:
    return f"{sid[:6]}…{sid[-4:]}" if len(sid) > 12 else sid


@dataclass(frozen=True)
class LocalConfig:
    """The stack's outside world: which Twilio, the public URL, keys, the answering profile."""

    account_sid: str = ""
    auth_token: str = ""
    twilio_api_base_url: str | None = None  # None: the stack's own emulator
    public_base_url: str = ""  # empty: Twilio (the emulator) reaches the gateway at its local URL
    agent_profile: str = ""  # empty: the profiles file's default_profile
    profiles_path: Path = DEFAULT_PROFILES
    service_env: dict[str, str] = field(default_factory=dict)  # VOICEBOT_* from .env for the services
    provider_keys: dict[str, str] = field(default_factory=dict)
    sources: str = "environment"

    @property
    def has_credentials(self) -> bool:
        return bool(self.account_sid and self.auth_token)

    @property
    def real_twilio(self) -> bool:
        return self.twilio_api_base_url is not None

    def for_simulated_calls(self) -> LocalConfig:
        """`make demo`: the same keys and profile, but the emulator and no tunnel (its call is simulated)."""
        return LocalConfig(agent_profile=self.agent_profile, profiles_path=self.profiles_path,
                           service_env=self.service_env, provider_keys=self.provider_keys, sources=self.sources)

    def profiles(self) -> AgentProfiles:
        return AgentProfiles.load(self.profiles_path)

    def answering_profile(self) -> str:
        raw = yaml.safe_load(self.profiles_path.read_text()) or {}
        return self.agent_profile or raw.get("default_profile", "default")

    def write_profiles(self, run_dir: Path) -> Path:
        """The profiles file the services read: the configured one, or with VOICEBOT_AGENT_PROFILE a
        copy in run/ whose default_profile is that profile (calls to numbers it does not map)."""
        if not self.agent_profile:
            return self.profiles_path
        raw = yaml.safe_load(self.profiles_path.read_text()) or {}
        raw["default_profile"] = self.agent_profile
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "agent-profiles.yaml"
        path.write_text(f"# written by voicebot_devstack from {self.profiles_path} with default_profile "
                        f"{self.agent_profile} (VOICEBOT_AGENT_PROFILE); edit that file, not this one\n"
                        + yaml.safe_dump(raw, sort_keys=False))
        return path


def load(env_file: Path | None = ENV_FILE, environ: Mapping[str, str] | None = None) -> LocalConfig:
    values = read_values(env_file, environ)
    sid, token = values.get("VOICEBOT_TWILIO_ACCOUNT_SID", ""), values.get("VOICEBOT_TWILIO_AUTH_TOKEN", "")
    if bool(sid) != bool(token):
        missing = "VOICEBOT_TWILIO_AUTH_TOKEN" if sid else "VOICEBOT_TWILIO_ACCOUNT_SID"
        raise ConfigError(f"{missing} is not set: set both the account SID and its auth token, or neither "
                          "(then the stack uses the Twilio emulator)")
    api = values.get("VOICEBOT_TWILIO_API_BASE_URL", "")
    if not sid:
        api_base: str | None = None
    elif api == EMULATOR:
        api_base = None
    else:
        api_base = (api or TWILIO_API).rstrip("/")
    profiles_path = Path(values.get("VOICEBOT_AGENT_PROFILES_PATH", "") or DEFAULT_PROFILES)
    if not profiles_path.is_absolute():
        profiles_path = ROOT / profiles_path
    if not profiles_path.is_file():
        raise ConfigError(f"no agent profiles file at {profiles_path} (VOICEBOT_AGENT_PROFILES_PATH)")
    config = LocalConfig(
        account_sid=sid, auth_token=token, twilio_api_base_url=api_base,
        public_base_url=values.get("VOICEBOT_GATEWAY_PUBLIC_BASE_URL", "").rstrip("/"),
        agent_profile=values.get("VOICEBOT_AGENT_PROFILE", ""), profiles_path=profiles_path,
        service_env={k: v for k, v in values.items() if k not in STACK_OWNED},
        provider_keys={k: values.get(k, "") for k in PROVIDER_KEYS},
        sources=f"{env_file} + environment" if env_file and env_file.is_file() else "environment (no .env)",
    )
    if config.agent_profile and config.agent_profile not in config.profiles().names:
        raise ConfigError(f"VOICEBOT_AGENT_PROFILE={config.agent_profile}: no such profile in {profiles_path}; "
                          f"known: {', '.join(config.profiles().names)}")
    return config


def webhook_urls(public_or_gateway_url: str) -> dict[str, str]:
    """What a Twilio number needs, on the URL Twilio reaches the gateway at."""
    base = public_or_gateway_url.rstrip("/")
    parts = urlsplit(base)
    ws_scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return {"voice": f"{base}/twilio/voice", "status": f"{base}/twilio/status",
            "stream": f"{ws_scheme}://{parts.netloc}{parts.path}/twilio/stream/{{CallSid}}"}


def provider_summary(config: LocalConfig, profile_name: str) -> tuple[str, list[str]]:
    """('cloud: llm openai gpt-4o-mini ...', [missing key variables]) for the answering profile."""
    profile = config.profiles().get(profile_name)
    options = profile.provider_options
    if profile.providers != "cloud":
        return profile.providers, []
    from voicebot_worker.providers.cloud import required_keys

    needed = required_keys(options)
    parts = [f"stt {options.get('stt', 'deepgram')}", f"llm {options.get('llm', 'groq')}"
             + (f" {options['llm_model']}" if options.get("llm_model") else "")
             + (f" at {options['llm_base_url']}" if options.get("llm_base_url") else ""),
             f"tts {options.get('tts', 'deepgram')}"]
    missing = [name for name in needed if not config.provider_keys.get(name)]
    return "cloud (" + ", ".join(parts) + ")", missing


def warnings(config: LocalConfig, gateway_url: str, local_llm: bool) -> list[str]:
    """What will not work as configured, each with the fix."""
    out: list[str] = []
    if config.has_credentials and not ACCOUNT_SID_PATTERN.match(config.account_sid):
        out.append(f"VOICEBOT_TWILIO_ACCOUNT_SID {mask_sid(config.account_sid)} is not an Account SID (AC + 32 hex "
                   "characters, Console > Account info); API key SIDs (SK...) do not sign webhooks")
    if config.real_twilio and not config.public_base_url:
        out.append(f"Twilio cannot reach {gateway_url}: start an https tunnel to it (e.g. `ngrok http "
                   f"{urlsplit(gateway_url).port}`) and set VOICEBOT_GATEWAY_PUBLIC_BASE_URL to the tunnel's URL")
    if config.public_base_url:
        parts = urlsplit(config.public_base_url)
        if parts.scheme != "https":
            out.append(f"VOICEBOT_GATEWAY_PUBLIC_BASE_URL {config.public_base_url} is not https: the stream URL "
                       f"becomes {parts.scheme.replace('http', 'ws')}://..., and Twilio opens Media Streams only on "
                       "wss:// (the call is answered, then drops); use the tunnel's https URL")
        if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0") and config.real_twilio:
            out.append(f"VOICEBOT_GATEWAY_PUBLIC_BASE_URL {config.public_base_url} is this machine: Twilio cannot "
                       "reach it; use your tunnel's public https URL")
    profile = config.answering_profile()
    summary, missing = provider_summary(config, profile)
    if missing:
        out.append(f"agent profile {profile} needs {', '.join(missing)}: calls will be answered and then fail "
                   "(worker log: `cloud providers need ...`); set them in .env")
    if summary == "local" and not local_llm:
        out.append(f"agent profile {profile} runs on the local LLM, which is not running (`make models`)")
    return out


def banner(config: LocalConfig, gateway_url: str, local_llm: bool, simulated_only: bool = False) -> list[str]:
    """The lines `make up` / `make demo` print about what is in use (secrets masked)."""
    lines = [f"configuration from {config.sources}"]
    if simulated_only:
        lines.append("  Twilio            the emulator (this call is simulated; Twilio settings are not used)")
    elif config.real_twilio:
        lines.append(f"  Twilio REST       {config.twilio_api_base_url}  account {mask_sid(config.account_sid)}  "
                     f"auth token {mask(config.auth_token)}")
    elif config.has_credentials:
        lines.append(f"  Twilio REST       the emulator, with your account {mask_sid(config.account_sid)} "
                     "(VOICEBOT_TWILIO_API_BASE_URL=emulator: a dry run)")
    else:
        lines.append("  Twilio REST       the emulator (no VOICEBOT_TWILIO_ACCOUNT_SID/AUTH_TOKEN: offline)")
    if not simulated_only:
        public = config.public_base_url or gateway_url
        urls = webhook_urls(public)
        lines.append("  public base URL   " + (config.public_base_url or f"not set: {gateway_url} (this machine only)"))
        lines.append("  webhooks (`bin/voicebot numbers connect +1NUMBER` sets them on your number):")
        lines.append(f"    A call comes in   POST {urls['voice']}")
        lines.append(f"    status callback   POST {urls['status']}")
        lines.append(f"    media stream           {urls['stream']}  (the gateway's TwiML names it)")
    profile = config.answering_profile()
    summary, _ = provider_summary(config, profile)
    source = "VOICEBOT_AGENT_PROFILE" if config.agent_profile else f"default_profile of {config.profiles_path.name}"
    lines.append(f"  agent profile     {profile} ({source}): providers {summary}")
    lines.append("  provider keys     " + ", ".join(
        f"{name.removeprefix('VOICEBOT_').removesuffix('_API_KEY')} {mask(config.provider_keys.get(name, ''))}"
        for name in PROVIDER_KEYS))
    lines.extend(f"WARNING: {w}" for w in warnings(config, gateway_url, local_llm))
    return lines


def stack_config(config: LocalConfig, base: StackConfig) -> StackConfig:
    """`base` with what the environment / .env configure: Twilio, public URL, profiles, service env."""
    base.profiles_path = config.write_profiles(base.run_dir)
    base.extra_env = {**config.service_env, **base.extra_env}
    if config.has_credentials:
        base.account_sid, base.auth_token = config.account_sid, config.auth_token
    base.twilio_api_base_url = config.twilio_api_base_url
    base.public_base_url = config.public_base_url
    return base
