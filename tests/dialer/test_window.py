"""Calling windows in the callee's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from voicebot_dialer.window import CallingWindow

NY = ZoneInfo("America/New_York")


def at(*args: int) -> float:
    return datetime(*args, tzinfo=NY).timestamp()


def test_next_open() -> None:
    window = CallingWindow(timezone="America/New_York", start="09:00", end="17:30", days=[0, 1, 2, 3, 4])
    wednesday_noon = at(2030, 1, 2, 12, 0)
    assert window.next_open(wednesday_noon) == wednesday_noon and window.is_open(wednesday_noon)
    assert window.next_open(at(2030, 1, 2, 7, 15)) == at(2030, 1, 2, 9, 0)
    assert window.next_open(at(2030, 1, 2, 17, 30)) == at(2030, 1, 3, 9, 0)
    # Friday evening -> Monday morning, skipping the weekend.
    assert window.next_open(at(2030, 1, 4, 18, 0)) == at(2030, 1, 7, 9, 0)


def test_daylight_saving_change_uses_local_time() -> None:
    window = CallingWindow(timezone="America/New_York", start="09:00", end="10:00")
    before_change = at(2030, 3, 9, 11, 0)  # Saturday; clocks go forward that night
    assert datetime.fromtimestamp(window.next_open(before_change), NY).hour == 9


@pytest.mark.parametrize("bad", [
    {"timezone": "Nowhere/Land", "start": "09:00", "end": "10:00"},
    {"timezone": "UTC", "start": "10:00", "end": "09:00"},
    {"timezone": "UTC", "start": "09:00", "end": "10:00", "days": [7]},
    {"timezone": "UTC", "start": "09:00", "end": "10:00", "days": []},
])
def test_invalid_windows(bad: dict) -> None:
    with pytest.raises(ValidationError):
        CallingWindow.model_validate(bad)
