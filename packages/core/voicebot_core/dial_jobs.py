"""The dial job contract: how a dial job is stored in Redis and how other services read it.

The dialer owns dial jobs and is their only writer; the gateway (outbound TwiML, answering
machines) and the bot-worker (variables, overrides) read one through `DialJobReader`. Every
field of the job hash is a string, JSON for nested values; `encode_fields` and `decode_job`
are the one codec both sides use.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicebot_core.redis_keys import RedisKeys
from voicebot_core.vocabulary import MachineDetection

log = logging.getLogger(__name__)

DialJobState = Literal["scheduled", "dispatched", "placing", "ringing", "in-progress",
                       "completed", "failed", "canceled"]
TERMINAL_DIAL_JOB_STATES: Final = frozenset({"completed", "failed", "canceled"})
JSON_FIELDS: Final = ("variables", "overrides", "metadata", "retry", "calling_window", "attempts")
INT_FIELDS: Final = ("attempt", "max_attempts")


def encode_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Python values -> hash strings (JSON for nested values, '1'/'0' for booleans)."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        if name in JSON_FIELDS or isinstance(value, dict | list):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "1" if value else "0"
        else:
            out[name] = "" if value is None else str(value)
    return out


def decode_job(raw: dict[str, str]) -> dict[str, Any]:
    """Hash strings -> the dialer's working dict (JSON fields parsed, counters as ints)."""
    job: dict[str, Any] = dict(raw)
    for name in JSON_FIELDS:
        if raw.get(name):
            job[name] = json.loads(raw[name])
    for name in INT_FIELDS:
        job[name] = int(raw.get(name) or 0)
    return job


def is_terminal(job: dict[str, Any]) -> bool:
    return job.get("state") in TERMINAL_DIAL_JOB_STATES


class DialJob(BaseModel):
    """What services other than the dialer may read of a dial job."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    state: str = ""
    to: str = ""
    from_: str = Field("", alias="from")
    agent_profile: str = ""
    variables: dict[str, str] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    machine_detection: MachineDetection = "none"
    attempt: int = 0
    campaign_id: str = ""
    call_sid: str = ""
    call_traceparent: str = ""  # the trace the call was placed in; the outbound webhook continues it

    @field_validator("variables", "overrides", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value else {}
            except ValueError:
                log.warning("dial job field is not JSON; ignoring it")
                return {}
        return value if isinstance(value, dict) else {}

    @field_validator("variables", mode="after")
    @classmethod
    def _strings(cls, value: dict[str, Any]) -> dict[str, str]:
        return {str(k): str(v) for k, v in value.items()}

    @field_validator("machine_detection", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        return value or "none"

    @field_validator("attempt", mode="before")
    @classmethod
    def _int(cls, value: Any) -> Any:
        return value or 0

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_DIAL_JOB_STATES

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> DialJob:
        return cls.model_validate(raw)


class DialJobReader:
    """Read-only access to dial jobs for the gateway and the bot-worker."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def get(self, job_id: str) -> DialJob | None:
        raw = await self._redis.hgetall(self._keys.dial_job(job_id))
        if not raw or not raw.get("id"):
            return None
        return DialJob.from_hash(raw)
