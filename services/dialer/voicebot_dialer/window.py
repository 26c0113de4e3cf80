"""Calling windows: local hours (and weekdays) in the callee's time zone when dialing is allowed."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from voicebot_dialer.json_types import integer

CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _clock(value: Any) -> Any:
    """Local wall-clock times are strings 'HH:MM' (or 'HH:MM:SS'), never numbers or times with offsets."""
    if not isinstance(value, str) or not re.fullmatch(CLOCK_PATTERN, value):
        raise ValueError(f"{value!r} is not a local time: write HH:MM (24 h), e.g. 09:00")
    return value


Clock = Annotated[time, BeforeValidator(_clock), WithJsonSchema({"type": "string", "pattern": CLOCK_PATTERN,
                                                                 "examples": ["09:00"]})]


class CallingWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"timezone": "America/New_York", "start": "09:00", "end": "20:00", "days": [0, 1, 2, 3, 4]}
    })

    timezone: str = Field(..., json_schema_extra={"pattern": ZONE_PATTERN, "maxLength": 64, "format": "iana-time-zone"},
                          description="IANA time zone of the callee, e.g. America/New_York (a name of the tz "
                                      "database; 422 otherwise).")
    start: Clock = Field(..., description="Local time dialing may start (HH:MM, 24 h).")
    end: Clock = Field(..., description="Local time dialing must stop (HH:MM, 24 h), later than start.")
    days: list[integer(0, 6)] = Field(
        default_factory=lambda: list(range(7)), min_length=1, description="Allowed weekdays, Monday=0 … Sunday=6.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if len(value) > 64 or not re.fullmatch(ZONE_PATTERN, value) or value not in known_zones():
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Paris")
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _ordered(self) -> CallingWindow:
        if self.end <= self.start:
            raise ValueError("calling window end must be after start (same local day)")
        return self

    def next_open(self, at_unix: float) -> float:
        """`at_unix` itself when it lies inside the window, else the next moment the window opens."""
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(at_unix, zone)
        for day_offset in range(8):
            day = (local + timedelta(days=day_offset)).date()
            if day.weekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start, zone)
            closes = datetime.combine(day, self.end, zone)
            if day_offset == 0 and opens <= local < closes:
                return at_unix
            if local < opens:
                return opens.timestamp()
        raise ValueError("calling window never opens")  # unreachable with a non-empty days list

    def is_open(self, at_unix: float) -> bool:
        return self.next_open(at_unix) == at_unix
