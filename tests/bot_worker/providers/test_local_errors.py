"""Local providers without any model: a missing model fails early and names `make models`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers.servers import ROOT, free_port
from voicebot_core.profiles import AgentProfile
from voicebot_worker.providers import local


def test_missing_models_name_the_make_target(tmp_path: Path) -> None:
    empty = SimpleNamespace(models_dir=str(tmp_path), worker_llm_base_url=None)
    with pytest.raises(local.MissingModelError, match="make models"):
        local.build_local_services(AgentProfile(name="x", providers="local"), empty)
    with pytest.raises(local.MissingModelError, match="make models"):
        local.piper_model_path(empty)


def test_llm_server_refuses_a_missing_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicebot_worker.llm_server", "--model", str(tmp_path / "none.gguf"),
         "--port", str(free_port())],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "make models" in result.stderr
