"""The stack started from a .env with a Twilio account (a dry run against the emulator, as
`VOICEBOT_TWILIO_API_BASE_URL=emulator` does): the services use that account's token, `voicebot
numbers connect --profile` sets the number's webhooks through the SDK, and the gateway answers a call
to that number with the profile named in the (signed) voice URL."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from helpers.constants import TEST_PROFILES_PATH
from voicebot_cli import numbers
from voicebot_cli.main import main
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.twilio_rest import make_client
from voicebot_devstack import environment
from voicebot_devstack.stack import Stack, StackConfig

SID = "AC" + "7" * 32
TOKEN = "laptop-account-token-0042"
NUMBER = "+15550100002"  # owned by the emulator's account; tests/agent-profiles.yaml does not map it


@pytest.fixture(scope="module")
def account_stack(tmp_path_factory):
    run = tmp_path_factory.mktemp("account-stack")
    env_file = run / ".env"
    env_file.write_text(f"TWILIO_ACCOUNT_SID={SID}\nTWILIO_AUTH_TOKEN={TOKEN}\nVOICEBOT_TWILIO_API_BASE_URL=emulator\n"
                        f"VOICEBOT_AGENT_PROFILES_PATH={TEST_PROFILES_PATH}\n")
    config = environment.load(env_file, {})
    stack = Stack(environment.stack_config(config, StackConfig(
        run_dir=run, workers=1, redis_prefix=f"devstack-account-{int(time.time() * 1000)}")))
    stack.start()
    yield stack, env_file
    stack.stop()


def test_numbers_connect_binds_a_profile_the_gateway_answers_with(account_stack, monkeypatch, capsys):
    stack, env_file = account_stack
    assert stack.auth_token == TOKEN  # not a random one: the account's
    for name in ("VOICEBOT_TWILIO_ACCOUNT_SID", "VOICEBOT_TWILIO_AUTH_TOKEN", "VOICEBOT_TWILIO_API_BASE_URL",
                 "VOICEBOT_GATEWAY_PUBLIC_BASE_URL", "VOICEBOT_AGENT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(numbers, "STACK_STATE", stack.config.run_dir / "stack.json")
    assert main(["numbers", "--env-file", str(env_file), "connect", NUMBER, "--profile", "fake-end-call"]) == 0
    assert "with agent profile fake-end-call" in capsys.readouterr().out
    [number] = make_client(SID, TOKEN, base_url=stack.urls["emulator"]).incoming_phone_numbers.list(
        phone_number=NUMBER)
    assert number.voice_url == f"{stack.urls['gateway']}/twilio/voice?agent_profile=fake-end-call"

    emulator = httpx.Client(base_url=stack.urls["emulator"], timeout=60)
    sid = emulator.post("/emulator/calls", json={"from": "+15550001111", "to": NUMBER, "script": "end-call"}
                        ).raise_for_status().json()["call_sid"]
    report = emulator.get(f"/emulator/calls/{sid}/wait", params={"timeout": 45}, timeout=60).json()
    assert report["status"] == "completed", report
    assert report["timeline"][1]["detail"]["voice_url"].endswith("?agent_profile=fake-end-call")
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert r.hget(RedisKeys(stack.config.redis_prefix).call(sid), "agent_profile") == "fake-end-call"


def test_unknown_profile_in_the_voice_url_falls_back_to_the_number_mapping(account_stack):
    stack, _ = account_stack
    client = make_client(SID, TOKEN, base_url=stack.urls["emulator"])
    [number] = client.incoming_phone_numbers.list(phone_number="+15550100000")
    client.incoming_phone_numbers(number.sid).update(
        voice_url=f"{stack.urls['gateway']}/twilio/voice?agent_profile=nobody")
    emulator = httpx.Client(base_url=stack.urls["emulator"], timeout=60)
    sid = emulator.post("/emulator/calls", json={"from": "+15550001111", "to": "+15550100000",
                                                 "script": {"name": "hang-up", "steps": [{"pause": 1.0},
                                                                                         {"hangup": {}}]}}
                        ).raise_for_status().json()["call_sid"]
    emulator.get(f"/emulator/calls/{sid}/wait", params={"timeout": 30}, timeout=40)
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert r.hget(RedisKeys(stack.config.redis_prefix).call(sid), "agent_profile") == "fake-three-turns"
    gateway_log = (stack.config.run_dir / "logs" / "gateway.log").read_text()
    assert "unknown agent profile 'nobody'" in gateway_log
