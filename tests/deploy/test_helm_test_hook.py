"""The `helm test` hook's script, taken from the rendered chart, run against a real gateway.

The gateway runs as `python -m voicebot_gateway` with the environment the chart gives its
Deployment (secrets resolved from the chart-made Secret, profiles from the chart's ConfigMap);
only Redis, the listening address and the Service URL are local. The script runs exactly as the
test pod's command does, with the pod's environment.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from helpers.servers import Service, free_port, python_module
from voicebot_core.redis_keys import RedisKeys

from .conftest import CHART, find

MINIMAL = str(CHART / "ci" / "minimal-values.yaml")
PUBLIC_BASE_URL = "https://voice.example.org/base"


def resolve_env(container: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet would set it from plain values and the Secret."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), item["value"])
            continue
        ref = item["valueFrom"].get("secretKeyRef")
        assert ref is not None, f"{item['name']}: only secret references are resolved here"
        if ref["key"] in secret:
            env[item["name"]] = secret[ref["key"]]
        else:
            assert ref.get("optional"), f"{item['name']}: secret key {ref['key']} missing"
    return env


@pytest.fixture
def chart(render) -> dict[str, Any]:
    docs = render("-f", MINIMAL, "--set", f"publicBaseUrl={PUBLIC_BASE_URL}")
    return {
        "pod": find(docs, "Pod", "voicebot-test-gateway"),
        "gateway": find(docs, "Deployment", "voicebot-gateway"),
        "service": find(docs, "Service", "voicebot-gateway"),
        "secret": find(docs, "Secret", "voicebot-secrets")["stringData"],
        "profiles": find(docs, "ConfigMap", "voicebot-agent-profiles")["data"],
    }


@pytest.fixture
def gateway(chart, redis_url, redis_prefix, tmp_path: Path):
    """The gateway process with the chart's environment; yields its base URL."""
    container = chart["gateway"]["spec"]["template"]["spec"]["containers"][0]
    env = resolve_env(container, chart["secret"])
    assert env["VOICEBOT_GATEWAY_PUBLIC_BASE_URL"] == PUBLIC_BASE_URL
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name, text in chart["profiles"].items():
        (profiles / name).write_text(text)
    port = free_port()
    env.update({
        # not development mode: the chart's secrets must pass the gateway's start-up check themselves
        "VOICEBOT_DEV_MODE": "false",
        "VOICEBOT_REDIS_URL": redis_url,
        "VOICEBOT_REDIS_PREFIX": redis_prefix,
        "VOICEBOT_GATEWAY_HOST": "127.0.0.1",
        "VOICEBOT_GATEWAY_PORT": str(port),
        "VOICEBOT_AGENT_PROFILES_PATH": env["VOICEBOT_AGENT_PROFILES_PATH"].replace(
            "/etc/voicebot/profiles", str(profiles)),
        "HOME": str(tmp_path),
    })
    service = Service(python_module("voicebot_gateway"), env, f"http://127.0.0.1:{port}/healthz",
                      tmp_path / "gateway.log")
    service.wait_ready()
    yield f"http://127.0.0.1:{port}"
    service.stop()


def run_hook(chart: dict[str, Any], gateway_url: str, secret: dict[str, str],
             ready_timeout_s: int = 10) -> subprocess.CompletedProcess[str]:
    """The test pod's command with this interpreter, its environment pointed at `gateway_url`."""
    (container,) = chart["pod"]["spec"]["containers"]
    command = container["command"]
    assert command[0] == "python"
    env = resolve_env(container, secret)
    service = chart["service"]
    assert env["VOICEBOT_TEST_GATEWAY_URL"] == (
        f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}")
    env["VOICEBOT_TEST_GATEWAY_URL"] = gateway_url
    env["VOICEBOT_TEST_READY_TIMEOUT_S"] = str(ready_timeout_s)
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_hook_script_uses_the_standard_library_only(chart):
    script = chart["pod"]["spec"]["containers"][0]["command"][-1]
    imported = set()
    for node in ast.walk(ast.parse(script)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported, "the script imports what it uses"
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_hook_passes_against_the_gateway_the_chart_configures(chart, gateway, redis_url, redis_prefix):
    result = run_hook(chart, gateway, chart["secret"])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "PASS"
    assert "ok: webhook with a wrong signature -> 403" in lines
    expected_stream = "wss://voice.example.org/base/twilio/stream/CA"
    assert any(line.startswith(f"ok: signed voice webhook -> TwiML <Connect><Stream url={expected_stream}")
               for line in lines), result.stdout
    # The test call reached Redis as an inbound call and was ended by the status callback.
    (call_sid,) = re.findall(r"status callback for test call (CA[0-9a-f]{32}) -> 204", result.stdout)
    record = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(RedisKeys(redis_prefix).call(call_sid))
    assert record["direction"] == "inbound"
    assert record["status"] == "completed"


def test_hook_fails_when_the_token_is_not_the_gateways(chart, gateway):
    result = run_hook(chart, gateway, {**chart["secret"], "twilio-auth-token": "another-token"})
    assert result.returncode == 1
    assert "FAIL: signed voice webhook: expected 200 XML, got 403" in result.stdout


def test_hook_fails_when_the_gateway_is_not_ready(chart):
    port = free_port()  # nothing listens there
    result = run_hook(chart, f"http://127.0.0.1:{port}", chart["secret"], ready_timeout_s=1)
    assert result.returncode == 1
    assert f"FAIL: GET http://127.0.0.1:{port}/readyz: None" in result.stdout
