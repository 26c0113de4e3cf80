"""The CLI tests reuse the dialer fixtures (real API process, Celery worker, emulator)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dialer"))

from dialer_fixtures import (  # noqa: F401 - pytest finds fixtures by name here
    celery_workers,
    dialer_settings,
    emulator,
    live_settings,
    twilio_routes,
)
