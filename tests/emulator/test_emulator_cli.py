"""The emulator's command line: `serve` runs it, `call` places an inbound call with a script file."""

from __future__ import annotations

import subprocess
import sys

from emulator_fixtures import ACCOUNT_SID, AUTH_TOKEN, BotServer

from helpers.servers import PYTHONPATH, ROOT, Service, free_port, python_module


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


def test_the_emulator_binds_to_loopback_by_default(monkeypatch) -> None:
    """Its control API has no authentication (development only): loopback unless told otherwise."""
    from voicebot_emulator.settings import EmulatorSettings, is_loopback

    monkeypatch.delenv("VOICEBOT_EMULATOR_HOST", raising=False)
    assert EmulatorSettings().emulator_host == "127.0.0.1"
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "", "192.168.1.7", "emulator.example"))


def test_serving_beyond_loopback_logs_a_warning(monkeypatch, caplog) -> None:
    """`serve --host 0.0.0.0` warns at start that the control API is unauthenticated; loopback does not."""
    import uvicorn

    import voicebot_core.logs
    from voicebot_emulator import cli

    served: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: served.append((host, port)))
    monkeypatch.setattr(voicebot_core.logs, "setup_logging", lambda *args, **kwargs: None)  # keep caplog's handler
    monkeypatch.delenv("VOICEBOT_EMULATOR_HOST", raising=False)
    with caplog.at_level("WARNING", logger="voicebot_emulator"):
        assert cli.main(["serve", "--port", "8061"]) == 0
        assert not [r for r in caplog.records if "not a loopback address" in r.getMessage()]
        assert cli.main(["serve", "--host", "0.0.0.0", "--port", "8061"]) == 0
    assert served == [("127.0.0.1", 8061), ("0.0.0.0", 8061)]
    (warning,) = [r for r in caplog.records if "not a loopback address" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "0.0.0.0:8061" in warning.getMessage() and "no authentication" in warning.getMessage()
