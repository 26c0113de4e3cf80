"""Calling windows: local hours (and weekdays) in the callee's time zone when dialing is allowed."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class CallingWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"timezone": "America/New_York", "start": "09:00", "end": "20:00", "days": [0, 1, 2, 3, 4]}
    })

    timezone: str = Field(..., description="IANA time zone of the callee, e.g. America/New_York.")
    start: time = Field(..., description="Local time dialing may start (HH:MM).")
    end: time = Field(..., description="Local time dialing must stop (HH:MM), after start.")
    days: list[int] = Field(default_factory=lambda: list(range(7)),
                            description="Allowed weekdays, Monday=0 … Sunday=6.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Paris") from None
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if not value or any(d < 0 or d > 6 for d in value):
            raise ValueError("days must be a non-empty list of weekday numbers 0 (Monday) to 6 (Sunday)")
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
