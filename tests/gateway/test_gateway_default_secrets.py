"""`python -m voicebot_gateway` refuses to start with a default or empty secret outside development
mode, and starts with VOICEBOT_DEV_MODE=true (issue 13: no default secrets)."""

from __future__ import annotations

import pytest

from helpers.entry_points import (
    GOOD_SECRETS,
    PUBLIC_DEFAULTS,
    assert_refused,
    minimal_env,
    run_entry_point,
    run_with_one_bad_secret,
)
from helpers.servers import Service, free_port, python_module

GATEWAY_SECRETS = ["VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_STREAM_TICKET_SECRET"]


def test_gateway_refuses_the_built_in_defaults(tmp_path):
    result = run_entry_point("voicebot_gateway", minimal_env(tmp_path))
    assert_refused(result, GATEWAY_SECRETS, list(PUBLIC_DEFAULTS.values()))


@pytest.mark.parametrize("variable", GATEWAY_SECRETS)
@pytest.mark.parametrize("kind", ["public default", "empty"])
def test_gateway_refuses_each_default_or_empty_secret(tmp_path, variable, kind):
    result = run_with_one_bad_secret(tmp_path, "voicebot_gateway", GATEWAY_SECRETS, variable, kind)
    other = next(name for name in GATEWAY_SECRETS if name != variable)
    assert other not in result.stderr, "only the offending variable is named"


def test_gateway_starts_in_dev_mode_with_the_defaults(tmp_path, redis_url, redis_prefix):
    port = free_port()
    env = minimal_env(tmp_path, VOICEBOT_DEV_MODE="true", VOICEBOT_REDIS_URL=redis_url,
                      VOICEBOT_REDIS_PREFIX=redis_prefix, VOICEBOT_GATEWAY_HOST="127.0.0.1",
                      VOICEBOT_GATEWAY_PORT=str(port))
    service = Service(python_module("voicebot_gateway"), env, f"http://127.0.0.1:{port}/healthz",
                      tmp_path / "gateway.log").wait_ready()
    assert service.stop() is not None


def test_gateway_starts_outside_dev_mode_with_secrets_of_its_own(tmp_path, redis_url, redis_prefix):
    port = free_port()
    env = minimal_env(tmp_path, VOICEBOT_DEV_MODE="false", VOICEBOT_REDIS_URL=redis_url,
                      VOICEBOT_REDIS_PREFIX=redis_prefix, VOICEBOT_GATEWAY_HOST="127.0.0.1",
                      VOICEBOT_GATEWAY_PORT=str(port), **{name: GOOD_SECRETS[name] for name in GATEWAY_SECRETS})
    service = Service(python_module("voicebot_gateway"), env, f"http://127.0.0.1:{port}/healthz",
                      tmp_path / "gateway.log").wait_ready()
    service.stop()
