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
