"""Fixtures live in dialer_fixtures.py so tests/cli can share them."""

from dialer_fixtures import (  # noqa: F401 - pytest finds fixtures by name here
    api,
    celery_workers,
    dialer_settings,
    emulator,
    live_settings,
    sync_redis,
    twilio_routes,
)
from stand_in_fixtures import calls_stand_in, stand_in_dialer  # noqa: F401
