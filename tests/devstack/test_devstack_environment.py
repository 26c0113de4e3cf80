"""What `make up` / `make demo` read from the environment and .env, and what they print: the
emulator without credentials, your Twilio with them, webhook URLs, masked secrets, warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.constants import SHIPPED_PROFILES_PATH
from voicebot_devstack import environment
from voicebot_devstack.environment import ConfigError, LocalConfig
from voicebot_devstack.stack import ACCOUNT_SID, StackConfig

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f" * 28 + "9a8b"
GROQ = "gsk_" + "x" * 40 + "QRST"
TUNNEL = "https://quiet-otter.trycloudflare.com"
GATEWAY = "http://127.0.0.1:8080"


def _load(tmp_path: Path, text: str, **environ: str) -> LocalConfig:
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    return environment.load(env_file, environ)


def test_without_credentials_the_emulator_as_before(tmp_path):
    config = environment.load(tmp_path / "missing.env", {})
    assert not config.has_credentials and not config.real_twilio
    assert config.answering_profile() == "default"
    text = "\n".join(environment.banner(config, GATEWAY, local_llm=True))
    assert "the emulator (no VOICEBOT_TWILIO_ACCOUNT_SID/AUTH_TOKEN: offline)" in text
    assert f"A call comes in   POST {GATEWAY}/twilio/voice" in text
    assert "WARNING" not in text
    base = environment.stack_config(config, StackConfig(run_dir=tmp_path))
    assert base.twilio_api_base_url is None and base.account_sid == ACCOUNT_SID and base.auth_token == ""
    assert base.profiles_path == config.profiles_path  # the shipped file, untouched


def test_credentials_point_at_twilio_and_the_banner_masks_secrets(tmp_path):
    config = _load(tmp_path, f"VOICEBOT_TWILIO_ACCOUNT_SID={SID}\nVOICEBOT_TWILIO_AUTH_TOKEN={TOKEN}\n"
                             f"VOICEBOT_GATEWAY_PUBLIC_BASE_URL={TUNNEL}/\nGROQ_API_KEY={GROQ}\n"
                             "VOICEBOT_DEEPGRAM_API_KEY=dg-secret-value-1234\n"
                             "VOICEBOT_AGENT_PROFILE=support-cloud\nVOICEBOT_DIALER_FROM_NUMBERS=+15551230000\n")
    assert config.real_twilio and config.twilio_api_base_url == "https://api.twilio.com"
    assert config.public_base_url == TUNNEL
    lines = environment.banner(config, GATEWAY, local_llm=False)
    text = "\n".join(lines)
    print(text)
    for secret in (TOKEN, GROQ, "dg-secret-value-1234", SID):
        assert secret not in text
    assert "auth token ****9a8b (32 chars)" in text
    assert f"A call comes in   POST {TUNNEL}/twilio/voice" in text
    assert f"status callback   POST {TUNNEL}/twilio/status" in text
    assert "wss://quiet-otter.trycloudflare.com/twilio/stream/{CallSid}" in text
    assert "agent profile     support-cloud (VOICEBOT_AGENT_PROFILE)" in text
    assert "GROQ ****QRST" in text and "OPENAI not set" in text
    assert "WARNING" not in text
    # the services get the keys and other VOICEBOT_* settings; the stack passes Twilio itself
    assert config.service_env["VOICEBOT_GROQ_API_KEY"] == GROQ
    assert config.service_env["VOICEBOT_DIALER_FROM_NUMBERS"] == "+15551230000"
    assert "VOICEBOT_TWILIO_AUTH_TOKEN" not in config.service_env
    base = environment.stack_config(config, StackConfig(run_dir=tmp_path / "run"))
    assert (base.account_sid, base.auth_token, base.twilio_api_base_url, base.public_base_url) == (
        SID, TOKEN, "https://api.twilio.com", TUNNEL)
    derived = yaml.safe_load(base.profiles_path.read_text())
    assert base.profiles_path.parent == tmp_path / "run" and derived["default_profile"] == "support-cloud"
    assert derived["profiles"].keys() == yaml.safe_load(SHIPPED_PROFILES_PATH.read_text())["profiles"].keys()


def test_environment_wins_over_env_file_and_regions_and_dry_runs(tmp_path):
    text = f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_AUTH_TOKEN={TOKEN}\nVOICEBOT_GATEWAY_PUBLIC_BASE_URL=https://old.example\n"
    config = _load(tmp_path, text, VOICEBOT_GATEWAY_PUBLIC_BASE_URL=TUNNEL,
                   VOICEBOT_TWILIO_API_BASE_URL="https://api.dublin.ie1.twilio.com")
    assert config.public_base_url == TUNNEL and config.twilio_api_base_url == "https://api.dublin.ie1.twilio.com"
    dry = _load(tmp_path, text, VOICEBOT_TWILIO_API_BASE_URL="emulator")
    assert dry.has_credentials and not dry.real_twilio
    assert "a dry run" in "\n".join(environment.banner(dry, GATEWAY, local_llm=True))


@pytest.mark.parametrize(("text", "warning"), [
    (f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_AUTH_TOKEN={TOKEN}\n", "Twilio cannot reach http://127.0.0.1:8080"),
    (f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_AUTH_TOKEN={TOKEN}\nVOICEBOT_GATEWAY_PUBLIC_BASE_URL=http://abc.ngrok.app\n",
     "is not https: the stream URL becomes ws://"),
    (f"TWILIO_ACCOUNT_SID=SK{'1' * 32}\nTWILIO_AUTH_TOKEN={TOKEN}\nVOICEBOT_GATEWAY_PUBLIC_BASE_URL={TUNNEL}\n",
     "is not an Account SID"),
    ("VOICEBOT_AGENT_PROFILE=support-cloud\n",
     "agent profile support-cloud needs VOICEBOT_DEEPGRAM_API_KEY, VOICEBOT_GROQ_API_KEY"),
    ("", "runs on the local LLM, which is not running"),
])
def test_warnings_name_the_fix(tmp_path, text, warning):
    config = _load(tmp_path, text)
    lines = environment.banner(config, GATEWAY, local_llm=False)
    assert any(line.startswith("WARNING: ") and warning in line for line in lines), lines


@pytest.mark.parametrize(("text", "error"), [
    (f"VOICEBOT_TWILIO_ACCOUNT_SID={SID}\n", "VOICEBOT_TWILIO_AUTH_TOKEN is not set"),
    ("VOICEBOT_AGENT_PROFILE=nobody\n", "no such profile"),
    ("VOICEBOT_AGENT_PROFILES_PATH=/nonexistent/profiles.yaml\n", "no agent profiles file"),
])
def test_impossible_settings_are_refused(tmp_path, text, error):
    with pytest.raises(ConfigError, match=error):
        _load(tmp_path, text)


def test_demo_keeps_keys_and_profile_but_simulates_the_call(tmp_path):
    config = _load(tmp_path, f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_AUTH_TOKEN={TOKEN}\n"
                             f"VOICEBOT_GATEWAY_PUBLIC_BASE_URL={TUNNEL}\nOPENAI_API_KEY=sk-test-123456789\n"
                             "VOICEBOT_AGENT_PROFILE=sales\n")
    demo = config.for_simulated_calls()
    assert not demo.has_credentials and not demo.real_twilio and not demo.public_base_url
    assert demo.agent_profile == "sales" and demo.service_env["VOICEBOT_OPENAI_API_KEY"] == "sk-test-123456789"
    text = "\n".join(environment.banner(demo, GATEWAY, local_llm=True, simulated_only=True))
    assert "this call is simulated" in text and TUNNEL not in text and "sk-test-123456789" not in text


def test_env_example_is_documented_and_holds_no_values():
    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    assigned = [line.split("=", 1) for line in example.splitlines() if "=" in line and not line.startswith("#")]
    assert all(value.strip() == "" for _, value in assigned), assigned
    names = {name.strip() for name, _ in assigned}
    assert {"VOICEBOT_TWILIO_ACCOUNT_SID", "VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_GATEWAY_PUBLIC_BASE_URL",
            "VOICEBOT_AGENT_PROFILE", *environment.PROVIDER_KEYS} <= names
    ignored = (root / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


def test_shipped_openai_compatible_profile_needs_only_an_openai_key(tmp_path):
    """The profile `.env.example` suggests for an OpenAI key alone: pipecat's OpenAI client, local speech."""
    from voicebot_core.profiles import AgentProfiles
    from voicebot_worker.providers import build_services
    from voicebot_worker.providers.cloud import required_keys
    from voicebot_worker.settings import WorkerSettings

    profiles = AgentProfiles.load(SHIPPED_PROFILES_PATH)
    profile = profiles.get("openai-compatible")
    assert required_keys(profile.provider_options) == ["VOICEBOT_OPENAI_API_KEY"]
    assert required_keys(profiles.get("support-cloud").provider_options) == [
        "VOICEBOT_DEEPGRAM_API_KEY", "VOICEBOT_GROQ_API_KEY"]
    with pytest.raises(ValueError, match="cloud providers need VOICEBOT_OPENAI_API_KEY"):
        build_services(profile, WorkerSettings())
    services = build_services(profile.model_copy(update={"provider_options": {
        **profile.provider_options, "llm_base_url": "http://127.0.0.1:9/v1", "tts": "piper"}}),
        WorkerSettings(openai_api_key="sk-test"))
    assert [type(s).__name__ for s in (services.stt, services.llm, services.tts)] == [
        "LocalWhisperSTTService", "OpenAILLMService", "PiperTTSService"]
    assert str(services.llm._client.base_url).startswith("http://127.0.0.1:9/v1")
    assert services.pipeline_sample_rate == 16000
    with pytest.raises(ValueError, match="stt must be one of deepgram, whisper"):
        required_keys({"stt": "azure"})
