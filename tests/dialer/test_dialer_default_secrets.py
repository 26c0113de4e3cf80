"""The dialer's API (`python -m voicebot_dialer.api`) and Celery worker (`python -m
voicebot_dialer.worker`) refuse to start with a default or empty secret outside development mode,
and start with VOICEBOT_DEV_MODE=true (issue 13: no default secrets)."""

from __future__ import annotations

import pytest

from helpers.entry_points import GOOD_SECRETS, PUBLIC_DEFAULTS, assert_refused, minimal_env, run_entry_point
from helpers.servers import Service, free_port, python_module

DIALER_SECRETS = ["VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_STREAM_TICKET_SECRET", "VOICEBOT_DIALER_WEBHOOK_SECRET"]
ENTRY_POINTS = ["voicebot_dialer.api", "voicebot_dialer.worker"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_dialer_refuses_the_built_in_defaults(tmp_path, module):
    result = run_entry_point(module, minimal_env(tmp_path))
    assert_refused(result, DIALER_SECRETS, list(PUBLIC_DEFAULTS.values()))


@pytest.mark.parametrize("module", ENTRY_POINTS)
@pytest.mark.parametrize("variable", DIALER_SECRETS)
def test_dialer_refuses_each_default_secret(tmp_path, module, variable):
    env = minimal_env(tmp_path, **{**GOOD_SECRETS, variable: PUBLIC_DEFAULTS[variable]})
    result = run_entry_point(module, env)
    assert_refused(result, [variable], [PUBLIC_DEFAULTS[variable], *GOOD_SECRETS.values()])
    assert [name for name in DIALER_SECRETS if name in result.stderr] == [variable]


@pytest.mark.parametrize("variable", DIALER_SECRETS)
def test_dialer_api_refuses_an_empty_secret(tmp_path, variable):
    result = run_entry_point("voicebot_dialer.api", minimal_env(tmp_path, **{**GOOD_SECRETS, variable: ""}))
    assert_refused(result, [variable], list(GOOD_SECRETS.values()))


def test_dialer_api_refuses_a_placeholder_api_key(tmp_path):
    """`change-me-key` is the documentation's example; empty keys stay allowed (they refuse every call)."""
    env = minimal_env(tmp_path, **GOOD_SECRETS, VOICEBOT_DIALER_API_KEYS="k3y-0f-0ur-0wn-5a7c9e1b,change-me-key")
    result = run_entry_point("voicebot_dialer.api", env)
    assert_refused(result, ["VOICEBOT_DIALER_API_KEYS"], ["change-me-key", "k3y-0f-0ur-0wn-5a7c9e1b"])


def test_dialer_worker_loads_its_settings_in_dev_mode(tmp_path):
    """`--help` imports the Celery app, which loads the settings at import (celery_app.py)."""
    result = run_entry_point("voicebot_dialer.worker", minimal_env(tmp_path, VOICEBOT_DEV_MODE="true"), "--help")
    assert result.returncode == 0, result.stderr
    assert "refusing to start" not in result.stderr


def test_dialer_worker_help_still_refuses_outside_dev_mode(tmp_path):
    result = run_entry_point("voicebot_dialer.worker", minimal_env(tmp_path), "--help")
    assert_refused(result, DIALER_SECRETS, list(PUBLIC_DEFAULTS.values()))


@pytest.mark.parametrize("dev_mode", [True, False])
def test_dialer_api_starts_in_dev_mode_or_with_secrets_of_its_own(tmp_path, redis_url, redis_prefix, dev_mode):
    port = free_port()
    secrets = {} if dev_mode else GOOD_SECRETS
    env = minimal_env(tmp_path, VOICEBOT_DEV_MODE=str(dev_mode).lower(), VOICEBOT_REDIS_URL=redis_url,
                      VOICEBOT_REDIS_PREFIX=redis_prefix, VOICEBOT_DIALER_BROKER_PREFIX=f"{redis_prefix}:celery:",
                      VOICEBOT_DIALER_HOST="127.0.0.1", VOICEBOT_DIALER_PORT=str(port), **secrets)
    service = Service(python_module("voicebot_dialer.api"), env, f"http://127.0.0.1:{port}/readyz",
                      tmp_path / "dialer-api.log").wait_ready()
    service.stop()
