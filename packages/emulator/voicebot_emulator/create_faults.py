"""Planned answers to the next `calls.create` requests: a slow Twilio, a 5xx after the call was made
or before it, a 429 with Retry-After. A dialer's crash and retry handling is tried against them
(bench/faults.py's twilio-faults scenario); with no plan, creates answer as Twilio does."""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, Field, model_validator


class CreateFault(BaseModel):
    """How one create goes: the call is made (or not) at once, the answer comes after `delay_s`."""

    status: int = Field(201, ge=200, le=599, description="HTTP status of the answer (201: the call's resource).")
    make_call: bool = Field(True, description="Whether Twilio makes the call (a 5xx may come after it did).")
    delay_s: float = Field(0.0, ge=0, le=120, description="Seconds before the answer (a client may give up first).")
    retry_after: str | None = Field(None, description="Retry-After header of the answer (429).")

    @model_validator(mode="after")
    def _made_calls_answer_201_or_5xx(self) -> CreateFault:
        if self.make_call and 400 <= self.status < 500:
            raise ValueError("Twilio makes no call when it answers 4xx: set make_call false")
        if not self.make_call and self.status == 201:
            raise ValueError("a 201 names the call it made: set make_call true")
        return self


class CreateFaultPlan:
    """The planned answers, taken one per create in order."""

    def __init__(self) -> None:
        self._planned: deque[CreateFault] = deque()

    def add(self, faults: list[CreateFault]) -> None:
        self._planned.extend(faults)

    def take(self) -> CreateFault | None:
        return self._planned.popleft() if self._planned else None

    def pending(self) -> list[CreateFault]:
        return list(self._planned)

    def clear(self) -> None:
        self._planned.clear()
