"""The real stack as separate processes: emulator, gateway, two bot-workers, Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from helpers.constants import TEST_PROFILES_PATH
from voicebot_devstack.stack import Stack, StackConfig

PROFILES = TEST_PROFILES_PATH
CALLER = "+15550001111"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url) -> Stack:
    run_dir = tmp_path_factory.mktemp("stack")
    prefix = f"e2e-{int(time.time() * 1000)}"
    stack = Stack(StackConfig(run_dir=run_dir, workers=2, worker_capacity=2, profiles_path=PROFILES,
                              redis_prefix=prefix, dialer=True))
    stack.start()
    yield stack
    stack.stop()


class Phone:
    """Places emulated calls through the emulator's control API and reads their reports."""

    def __init__(self, emulator_url: str) -> None:
        self.url = emulator_url
        self.http = httpx.Client(base_url=emulator_url, timeout=90)

    def call(self, to: str, script: str | dict, caller: str = CALLER) -> str:
        response = self.http.post("/emulator/calls", json={"from": caller, "to": to, "script": script})
        response.raise_for_status()
        return response.json()["call_sid"]

    def wait(self, call_sid: str, timeout: float = 60) -> dict:
        response = self.http.get(f"/emulator/calls/{call_sid}/wait", params={"timeout": timeout},
                                 timeout=timeout + 10)
        response.raise_for_status()
        return self.report(call_sid)

    def report(self, call_sid: str) -> dict:
        return self.http.get(f"/emulator/calls/{call_sid}").raise_for_status().json()


@pytest.fixture(scope="module")
def phone(stack) -> Phone:
    return Phone(stack.urls["emulator"])


@pytest.fixture
def phone_for():
    return lambda stack: Phone(stack.urls["emulator"])


@pytest.fixture(scope="module")
def models_dir() -> Path:
    directory = Path(os.environ.get("VOICEBOT_MODELS_DIR", Path.home() / ".cache" / "voicebot" / "models"))
    if not (directory / "smollm2-135m" / "model.gguf").exists():
        pytest.fail(f"no local models in {directory}: run `make models-small` (make test does)")
    return directory
