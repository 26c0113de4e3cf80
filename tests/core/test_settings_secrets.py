"""Outside development mode, settings refuse empty secrets and the public development defaults,
naming the variables and never the values (issue 13: no default secrets)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError

from voicebot_core.settings import (
    DEV_MODE_ENV,
    PUBLIC_DEFAULT_SECRETS,
    CommonSettings,
    is_public_default,
    load_settings,
)
from voicebot_emulator.settings import EmulatorSettings


class TwoSecrets(CommonSettings):
    secrets_in_use: ClassVar[tuple[str, ...]] = ("twilio_auth_token", "stream_ticket_secret")


GOOD = {"twilio_auth_token": SecretStr("9d1f3e5a7c9b1d3f5a7c9e1b3d5f7a9c"),
        "stream_ticket_secret": SecretStr("c4a9d1f3e5a7c9b1d3f5a7c9e1b3d5f7a9c1e3b5")}


@pytest.fixture(autouse=True)
def production_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the tests' development mode: the settings as a deployment loads them."""
    monkeypatch.delenv(DEV_MODE_ENV, raising=False)
    for name in ("VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_STREAM_TICKET_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_public_defaults_and_placeholders_are_recognised():
    for value in PUBLIC_DEFAULT_SECRETS:
        assert is_public_default(value) and is_public_default(f"  {value}\n")
    assert is_public_default("") and is_public_default("   ")
    assert is_public_default("change-me-key") and is_public_default("CHANGE-ME")
    assert not is_public_default("9d1f3e5a7c9b1d3f5a7c9e1b3d5f7a9c")


def test_built_in_defaults_refused_outside_dev_mode_naming_every_variable():
    with pytest.raises(ValidationError) as caught:
        TwoSecrets()
    message = str(caught.value)
    assert "VOICEBOT_TWILIO_AUTH_TOKEN, VOICEBOT_STREAM_TICKET_SECRET are empty or a public development default" \
        in message
    assert DEV_MODE_ENV in message
    assert not any(value in message for value in PUBLIC_DEFAULT_SECRETS)


@pytest.mark.parametrize("field", ["twilio_auth_token", "stream_ticket_secret"])
@pytest.mark.parametrize("value", ["", "emulator-auth-token", "change-me-stream-ticket-secret", "change-me-later"])
def test_each_secret_alone_refused_from_the_environment(monkeypatch, field, value):
    good = {f"VOICEBOT_{k.upper()}": v.get_secret_value() for k, v in GOOD.items()}
    monkeypatch.setenv(f"VOICEBOT_{field.upper()}", value)
    for name, secret in good.items():
        if name != f"VOICEBOT_{field.upper()}":
            monkeypatch.setenv(name, secret)
    with pytest.raises(ValidationError) as caught:
        TwoSecrets()
    message = str(caught.value)
    assert f"VOICEBOT_{field.upper()} is empty or a public development default" in message
    assert (value or "input_value") not in message  # hide_input_in_errors: no value is printed
    assert not any(secret in message for secret in good.values())


def test_own_secrets_accepted_and_dev_mode_allows_the_defaults(monkeypatch):
    assert TwoSecrets(**GOOD).twilio_auth_token == GOOD["twilio_auth_token"]
    monkeypatch.setenv(DEV_MODE_ENV, "true")
    settings = TwoSecrets()
    assert settings.dev_mode and settings.twilio_auth_token.get_secret_value() in PUBLIC_DEFAULT_SECRETS
    assert TwoSecrets(dev_mode=True).dev_mode


def test_dev_mode_is_off_unless_set():
    assert CommonSettings().dev_mode is False  # CommonSettings itself uses no secret


def test_load_settings_exits_with_the_message_not_a_traceback():
    with pytest.raises(SystemExit) as caught:
        load_settings(TwoSecrets)
    text = str(caught.value.code)
    assert text.startswith("TwoSecrets: refusing to start:") and "VOICEBOT_TWILIO_AUTH_TOKEN" in text


def test_the_emulator_uses_no_secret_of_its_own():
    """The emulator plays Twilio in development: it signs with whatever token the stack gives it."""
    assert EmulatorSettings.secrets_in_use == ()
    assert EmulatorSettings().twilio_auth_token.get_secret_value() == "emulator-auth-token"
