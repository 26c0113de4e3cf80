"""Fixtures for the deployment tests: helm and friends from scripts/fetch_deploy_tools.sh."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "voicebot"


def tools_dir() -> Path:
    default = Path.home() / ".cache" / "voicebot" / "tools"
    return Path(os.environ.get("VOICEBOT_TOOLS_DIR", default))


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    bin_dir = tools_dir() / "bin"
    if not (bin_dir / "helm").exists():
        pytest.skip(f"helm not in {bin_dir}: run scripts/fetch_deploy_tools.sh (make test does)")
    return bin_dir


@pytest.fixture(scope="session")
def helm(tools_bin: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
        cmd = [str(tools_bin / "helm"), "template", "voicebot", str(chart), "--namespace", "voicebot",
               "--kube-version", "1.30.0", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return run


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., list[dict[str, Any]]]:
    """Render the chart and return its documents; fails the test when helm refuses."""
    def run(*args: str, chart: Path = CHART) -> list[dict[str, Any]]:
        result = helm(*args, chart=chart)
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]
    return run


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: found {len(matches)}"
    return matches[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}
