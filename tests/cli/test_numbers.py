"""`voicebot numbers list|connect` against the emulator's IncomingPhoneNumbers through the real twilio
SDK: settings from a .env file, the environment or `make up`'s run/stack.json; the voice URL names
the agent profile; refusals name the fix. No dialer API key is needed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.servers import uvicorn_thread
from voicebot_cli import numbers
from voicebot_cli.main import main
from voicebot_core.twilio_rest import make_client
from voicebot_emulator.app import create_app
from voicebot_emulator.settings import EmulatorSettings

SID = "AC" + "5" * 32
TOKEN = "cli-numbers-test-token"
NUMBER = "+15550100001"
TUNNEL = "https://voicebot-test.example-tunnel.dev"


@pytest.fixture(scope="module")
def twilio(tmp_path_factory) -> Iterator[str]:
    settings = EmulatorSettings(twilio_account_sid=SID, twilio_auth_token=TOKEN,
                                emulator_recordings_dir=tmp_path_factory.mktemp("numbers-audio"))
    with uvicorn_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path) -> None:
    """Nothing from the developer's shell, .env or running stack leaks in."""
    for name in ("VOICEBOT_TWILIO_ACCOUNT_SID", "VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_TWILIO_API_BASE_URL",
                 "VOICEBOT_GATEWAY_PUBLIC_BASE_URL", "VOICEBOT_AGENT_PROFILE", "VOICEBOT_AGENT_PROFILES_PATH",
                 "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "VOICEBOT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(numbers, "STACK_STATE", tmp_path / "no-stack.json")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(numbers, "ROOT", tmp_path)  # no repository .env either
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "agent-profiles.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "config" / "agent-profiles.yaml").read_text())


def _env_file(tmp_path: Path, twilio: str, **extra: str) -> Path:
    values = {"VOICEBOT_TWILIO_ACCOUNT_SID": SID, "VOICEBOT_TWILIO_AUTH_TOKEN": TOKEN,
              "VOICEBOT_TWILIO_API_BASE_URL": twilio, "VOICEBOT_GATEWAY_PUBLIC_BASE_URL": TUNNEL, **extra}
    path = tmp_path / "test.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _number(twilio: str, phone: str = NUMBER):
    [number] = make_client(SID, TOKEN, base_url=twilio).incoming_phone_numbers.list(phone_number=phone)
    return number


def test_connect_sets_voice_url_status_callback_and_methods(twilio, tmp_path, capsys):
    env_file = _env_file(tmp_path, twilio)
    assert main(["numbers", "--env-file", str(env_file), "connect", NUMBER, "--profile", "support-cloud"]) == 0
    out = capsys.readouterr().out
    assert f"{TUNNEL}/twilio/voice?agent_profile=support-cloud" in out and "agent profile support-cloud" in out
    number = _number(twilio)
    assert number.voice_url == f"{TUNNEL}/twilio/voice?agent_profile=support-cloud"
    assert number.voice_method == "POST"
    assert (number.status_callback, number.status_callback_method) == (f"{TUNNEL}/twilio/status", "POST")
    assert TOKEN not in out

    # without --profile (and no VOICEBOT_AGENT_PROFILE) the gateway's number mapping decides
    assert main(["numbers", "--env-file", str(env_file), "connect", NUMBER]) == 0
    assert _number(twilio).voice_url == f"{TUNNEL}/twilio/voice"

    # listed, with the profile read back from the URL; --json for scripts
    assert main(["numbers", "--env-file", str(env_file), "connect", NUMBER, "--profile", "sales"]) == 0
    capsys.readouterr()
    assert main(["--json", "numbers", "--env-file", str(env_file), "list", NUMBER]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["phone_number"] == NUMBER and row["agent_profile"] == "sales"
    assert main(["numbers", "--env-file", str(env_file), "list"]) == 0
    listing = capsys.readouterr().out
    assert NUMBER in listing and "+15550100000" in listing and "agent profile sales" in listing


def test_environment_and_tutorial_names_and_default_profile(twilio, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)  # the tutorials' names work too
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("VOICEBOT_TWILIO_API_BASE_URL", twilio)
    monkeypatch.setenv("VOICEBOT_AGENT_PROFILE", "sales")
    assert main(["numbers", "connect", "+15550100002", "--public-url", TUNNEL + "/"]) == 0
    assert _number(twilio, "+15550100002").voice_url == f"{TUNNEL}/twilio/voice?agent_profile=sales"


def test_offline_make_up_state_is_used_without_credentials(twilio, tmp_path, monkeypatch, capsys):
    """After `make up` without credentials, run/stack.json names the emulator and its token."""
    state = tmp_path / "stack.json"
    state.write_text(json.dumps({"twilio": {"account_sid": SID, "auth_token": TOKEN, "api_base_url": twilio,
                                            "emulator": True, "public_base_url": "http://127.0.0.1:8080"}}))
    monkeypatch.setattr(numbers, "STACK_STATE", state)
    assert main(["numbers", "connect", "+15550100000"]) == 0
    captured = capsys.readouterr()
    assert "not https" in captured.err and "fine for the emulator" in captured.err
    assert _number(twilio, "+15550100000").voice_url == "http://127.0.0.1:8080/twilio/voice"


@pytest.mark.parametrize(("args", "extra", "message"), [
    (["connect", "+15559999999"], {}, "is not a number of account"),
    (["connect", NUMBER, "--profile", "nobody"], {}, "no agent profile 'nobody'"),
    (["connect", NUMBER], {"VOICEBOT_GATEWAY_PUBLIC_BASE_URL": ""}, "no public URL for the gateway"),
    (["list"], {"VOICEBOT_TWILIO_AUTH_TOKEN": "wrong-token"}, "wrong account SID or auth token"),
])
def test_refusals_say_what_to_fix(twilio, tmp_path, capsys, args, extra, message):
    env_file = _env_file(tmp_path, twilio, **extra)
    assert main(["numbers", "--env-file", str(env_file), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "wrong-token" not in err


def test_real_twilio_refuses_a_local_public_url(tmp_path, capsys):
    """Against api.twilio.com a 127.0.0.1 URL cannot work: refused before any request is sent."""
    env_file = tmp_path / "real.env"
    env_file.write_text(f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_AUTH_TOKEN={TOKEN}\n"
                        "VOICEBOT_GATEWAY_PUBLIC_BASE_URL=http://127.0.0.1:8080\n")
    assert main(["numbers", "--env-file", str(env_file), "connect", NUMBER]) == 1
    assert "Twilio cannot reach it" in capsys.readouterr().err


def test_no_credentials_and_no_stack(capsys):
    assert main(["numbers", "list"]) == 1
    assert "no Twilio credentials" in capsys.readouterr().err
