"""Caller scripts (the format the fake STT shares) and the emulator's command line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from emulator_fixtures import ACCOUNT_SID, AUTH_TOKEN, BotServer

from helpers.servers import PYTHONPATH, ROOT, Service, free_port, python_module
from voicebot_emulator import script
from voicebot_emulator.script import ScriptError


def test_utterances_are_say_and_barge_in_texts_in_step_order(tmp_path) -> None:
    assert script.utterances("three-turns") == [
        "I would like to check my order status",
        "my order number is four two seven",
        "thank you, that is all for today",
    ]
    inline = {"steps": [{"wait_for_bot": {}}, {"say": "first"}, {"silence": 1},
                        {"barge_in": {"after_s": 0.6, "say": "second"}}, {"dtmf": "1#"}, {"say": "third"}]}
    assert script.utterances(inline) == ["first", "second", "third"]
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nsteps:\n  - say: hi there\n  - pause: 0.5\n  - hangup: {}\n")
    loaded = script.load(str(path))
    assert loaded.name == "mine" and [s.kind for s in loaded.steps] == ["say", "silence", "hangup"]
    assert script.utterances(str(path)) == ["hi there"]
    assert set(script.builtin_names()) >= {"three-turns", "outbound-default", "barge-in", "listen"}
    for name in script.builtin_names():
        assert script.load(name).steps


@pytest.mark.parametrize("bad", [
    {"steps": [{"shout": "x"}]},
    {"steps": [{"barge_in": {"after_s": 1}}]},
    {"steps": "say hi"},
    "no-such-script",
])
def test_invalid_scripts_are_refused(bad: object) -> None:
    with pytest.raises(ScriptError):
        script.load(bad)  # type: ignore[arg-type]


def test_serve_and_call_commands(bot: BotServer, tmp_path) -> None:
    port = free_port()
    env = {"VOICEBOT_EMULATOR_PORT": str(port), "VOICEBOT_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "VOICEBOT_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "VOICEBOT_EMULATOR_RECORDINGS_DIR": str(tmp_path),
           "VOICEBOT_EMULATOR_VOICE_URL": f"{bot.url}/voice", "VOICEBOT_LOG_JSON": "false"}
    server = Service(python_module("voicebot_emulator"), env, f"http://127.0.0.1:{port}/healthz",
                     tmp_path / "emulator.log").wait_ready()
    try:
        caller = tmp_path / "caller.yaml"
        caller.write_text("steps:\n  - say: hello from the command line\n  - hangup: {}\n")
        result = subprocess.run(
            [sys.executable, "-m", "voicebot_emulator", "call", "--emulator", f"http://127.0.0.1:{port}",
             "--script", str(caller), "--timeout", "20"],
            env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"}, cwd=ROOT,
            capture_output=True, text=True, timeout=40,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr + server.log_tail()
    assert "stream-connected" in result.stdout and "heard audio: " in result.stdout
    (voice,) = bot.of_kind("voice")
    assert voice.signature_ok and voice.data["AccountSid"] == ACCOUNT_SID  # env reached the emulator
    assert bot.messages()[-1]["event"] == "stop"
