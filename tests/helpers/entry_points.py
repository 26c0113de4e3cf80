"""Run a service's entry point as a real process with only the environment a test gives it (no
VOICEBOT_* inherited from the test process, which runs in development mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from voicebot_core.settings import DEV_MODE_ENV, PUBLIC_DEFAULT_SECRETS
from voicebot_devstack.processes import PYTHONPATH, ROOT

# Values of our own choosing: long, random-looking, not a public default.
GOOD_SECRETS = {
    "VOICEBOT_TWILIO_AUTH_TOKEN": "3f9c1d7e5a2b4c6d8e0f1a3b5c7d9e1f",
    "VOICEBOT_STREAM_TICKET_SECRET": "b7e2c4a9d1f3e5a7c9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9",
    "VOICEBOT_DIALER_WEBHOOK_SECRET": "e1d2c3b4a5968778695a4b3c2d1e0f1e2d3c4b5a69788796",
}
# What each public default stands in for: (variable, value) pairs a service must refuse.
PUBLIC_DEFAULTS = {
    "VOICEBOT_TWILIO_AUTH_TOKEN": "emulator-auth-token",
    "VOICEBOT_STREAM_TICKET_SECRET": "change-me-stream-ticket-secret",
    "VOICEBOT_DIALER_WEBHOOK_SECRET": "change-me-webhook-secret",
}
assert set(PUBLIC_DEFAULTS.values()) == set(PUBLIC_DEFAULT_SECRETS)


def minimal_env(home: Path, **variables: str) -> dict[str, str]:
    """PATH, PYTHONPATH and HOME, plus `variables`: development mode only when a test sets it."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": PYTHONPATH, "HOME": str(home),
            "PYTHONUNBUFFERED": "1", "OTEL_SDK_DISABLED": "true", "HF_HUB_OFFLINE": "1", **variables}


def run_entry_point(module: str, env: dict[str, str], *args: str, timeout: float = 120.0,
                    ) -> subprocess.CompletedProcess[str]:
    """`python -m module args` to completion (a service refusing to start exits at once)."""
    return subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def assert_refused(result: subprocess.CompletedProcess[str], variables: list[str], values: list[str]) -> None:
    """Exited non-zero at start with one clear error naming every variable and no secret value."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "refusing to start" in result.stderr, output
    assert "Traceback" not in output, output
    for name in variables:
        assert name in result.stderr, output
    for value in values:
        assert value not in output, f"secret value printed: {output}"
    assert DEV_MODE_ENV in result.stderr, "the error names the development-mode switch"


def run_with_one_bad_secret(tmp_path: Path, module: str, secrets: list[str], variable: str,
                            kind: str) -> subprocess.CompletedProcess[str]:
    """`python -m module` with good values for `secrets` but `variable`, which is its public default
    (kind "public default") or empty; asserts the refusal names it and prints no secret value."""
    value = PUBLIC_DEFAULTS[variable] if kind == "public default" else ""
    env = minimal_env(tmp_path, **{**{name: GOOD_SECRETS[name] for name in secrets}, variable: value})
    result = run_entry_point(module, env)
    assert_refused(result, [variable], [v for v in (value, *GOOD_SECRETS.values()) if v])
    return result
