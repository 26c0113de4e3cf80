"""Agent profiles: persona, voice, greetings, idle behaviour, tools and providers, from YAML.

A profile can be overridden per call (e.g. by a dial job) with a partial mapping of the fields in
`OVERRIDABLE_FIELDS` (what the agent says and how it sounds, never where the call goes, which
providers or keys it uses, or what it records); `{variable}` placeholders in persona and greetings are
filled from call variables. `transfer_number` must be an E.164 number or an allow-listed SIP URI
(`voicebot_core.transfer_targets`).
"""

from __future__ import annotations

import logging
import string
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from voicebot_core.transfer_targets import InvalidTransferTarget, allowed_sip_hosts, check_transfer_target

log = logging.getLogger(__name__)

Direction = Literal["inbound", "outbound"]
ToolName = Literal["end_call", "transfer_to_human"]

# The profile fields a call may override (a dial job's `overrides`): conversation only. Not among them:
# transfer_number (sends the call elsewhere), tools, providers/provider_options (providers, keys, URLs),
# turn_detection, noise_filter, record, name.
OVERRIDABLE_FIELDS: tuple[str, ...] = (
    "persona", "voice", "language", "greeting", "idle_timeout_s", "idle_prompt", "max_idle_prompts",
    "idle_goodbye", "goodbye", "transfer_message", "voicemail_message",
)
# Also taken from a stored dial job: the dialer accepts it only from an API key with the admin scope
# (voicebot_dialer.auth), and it is validated like the profile's own (transfer_targets).
ADMIN_OVERRIDABLE_FIELDS: tuple[str, ...] = ("transfer_number",)
# Validation context key: the SIP transfer host allow-list (default: VOICEBOT_TRANSFER_SIP_HOSTS).
SIP_HOSTS_CONTEXT = "transfer_sip_hosts"


class OverrideNotAllowed(ValueError):
    """A per-call override of a profile field outside OVERRIDABLE_FIELDS."""


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` if every field is in OVERRIDABLE_FIELDS; raises OverrideNotAllowed naming the others."""
    refused = sorted(str(k) for k in overrides if k not in OVERRIDABLE_FIELDS)
    if refused:
        raise OverrideNotAllowed(
            f"{', '.join(refused)} cannot be overridden per call; overridable fields: {', '.join(OVERRIDABLE_FIELDS)}")
    return overrides


class Greetings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inbound: str = "Hello, thanks for calling. How can I help you today?"
    outbound: str = "Hello, this is an automated assistant calling. Do you have a moment?"


class AgentProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    persona: str = "You are a friendly, concise phone assistant. Keep answers to one or two sentences."
    voice: str = ""
    language: str = "en"
    greeting: Greetings = Field(default_factory=Greetings)
    idle_timeout_s: float = 5.0
    idle_prompt: str = "Are you still there?"
    max_idle_prompts: int = 2
    idle_goodbye: str = "I haven't heard from you, so I'll end the call now. Goodbye!"
    goodbye: str = "Thanks for calling. Goodbye!"
    tools: list[ToolName] = Field(default_factory=lambda: ["end_call", "transfer_to_human"])
    transfer_number: str = ""
    transfer_message: str = "Let me connect you with a person. One moment please."
    voicemail_message: str = ""
    providers: Literal["cloud", "local", "fake"] = "fake"
    provider_options: dict[str, Any] = Field(default_factory=dict)
    turn_detection: Literal["smart_turn_v3", "speech_timeout"] = "smart_turn_v3"
    noise_filter: bool = True
    record: bool = True

    @field_validator("transfer_number")
    @classmethod
    def _transfer_target(cls, value: str, info: ValidationInfo) -> str:
        context = info.context if isinstance(info.context, dict) else {}
        hosts = context.get(SIP_HOSTS_CONTEXT)
        return check_transfer_target(value, allowed_sip_hosts() if hosts is None else allowed_sip_hosts(hosts))

    def greeting_for(self, direction: Direction, variables: dict[str, str] | None = None) -> str:
        text = self.greeting.outbound if direction == "outbound" else self.greeting.inbound
        return fill(text, variables or {})

    def system_prompt(self, variables: dict[str, str] | None = None) -> str:
        prompt = fill(self.persona, variables or {})
        if variables:
            facts = "\n".join(f"- {k}: {v}" for k, v in sorted(variables.items()))
            prompt += f"\n\nFacts about this call:\n{facts}"
        return prompt


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_profile: str = "default"
    numbers: dict[str, str] = Field(default_factory=dict, description="Called number -> profile name.")
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(text: str, variables: dict[str, str]) -> str:
    """Fill `{name}` placeholders; unknown ones stay as written instead of raising."""
    try:
        return string.Formatter().vformat(text, (), _Missing(variables))
    except (ValueError, IndexError):
        return text


class AgentProfiles:
    def __init__(self, data: ProfilesFile, sip_hosts: str | frozenset[str] | None = None) -> None:
        """`sip_hosts`: the SIP transfer host allow-list; None reads VOICEBOT_TRANSFER_SIP_HOSTS."""
        self._data = data
        self._context = {SIP_HOSTS_CONTEXT: allowed_sip_hosts(sip_hosts)}
        for name, raw in data.profiles.items():  # fail at start-up, not mid-call
            AgentProfile.model_validate({**raw, "name": name}, context=self._context)

    @classmethod
    def load(cls, path: str | Path, sip_hosts: str | frozenset[str] | None = None) -> AgentProfiles:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls(ProfilesFile.model_validate(raw), sip_hosts)

    @property
    def names(self) -> list[str]:
        return sorted(self._data.profiles)

    def for_number(self, called_number: str) -> str:
        return self._data.numbers.get(called_number, self._data.default_profile)

    def get(self, name: str | None, overrides: dict[str, Any] | None = None) -> AgentProfile:
        """Profile `name` with per-call `overrides`; fields outside OVERRIDABLE_FIELDS and
        ADMIN_OVERRIDABLE_FIELDS are dropped (logged): the dialer refuses them on entry, so one here
        was stored by something else. A transfer target is validated like the profile's own."""
        name = name or self._data.default_profile
        if name not in self._data.profiles:
            raise KeyError(f"unknown agent profile {name!r}; known: {', '.join(self.names)}")
        allowed = {k: v for k, v in (overrides or {}).items()
                   if k in OVERRIDABLE_FIELDS or k in ADMIN_OVERRIDABLE_FIELDS}
        if len(allowed) != len(overrides or {}):
            log.warning("per-call profile overrides ignored: %s (not overridable)",
                        ", ".join(sorted(str(k) for k in overrides or {} if k not in allowed)))
        if "transfer_number" in allowed:
            try:
                check_transfer_target(allowed["transfer_number"], self._context[SIP_HOSTS_CONTEXT])
            except InvalidTransferTarget as exc:
                log.warning("per-call transfer_number override ignored: %s", exc)
                del allowed["transfer_number"]
        merged = _deep_merge(self._data.profiles[name], allowed)
        return AgentProfile.model_validate({**merged, "name": name}, context=self._context)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@lru_cache(maxsize=8)
def load_profiles(path: str) -> AgentProfiles:
    return AgentProfiles.load(path)
