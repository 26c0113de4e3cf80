"""The Dockerfiles copy everything their command imports, and .dockerignore lets those paths in.

No Docker engine here: this rebuilds each runtime stage's /app from the Dockerfile's COPY lines
in a temporary directory and imports the image's entry module with the image's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

DOCKERFILES = sorted((REPO / "docker").glob("*/Dockerfile"))


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")))
    parsed = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
              for line in text.splitlines() if line.strip()]
    last_from = max(i for i, (op, _) in enumerate(parsed) if op == "FROM")
    return parsed[last_from:]


def entry_module(ops: list[tuple[str, str]]) -> str:
    command = []
    for op, args in ops:
        if op in ("ENTRYPOINT", "CMD") and args.startswith("["):
            command += json.loads(args)  # exec form only
            if op == "ENTRYPOINT":
                break
    if "-m" in command:
        module = command[command.index("-m") + 1]
        return module if "." in module else f"{module}.__main__"
    return command[command.index("-A") + 1]  # celery -A app


def image_env(ops: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in ops:
        if op == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_sources_are_complete(dockerfile, tmp_path):
    ops = instructions(dockerfile)
    root = tmp_path / "image"
    for op, args in ops:
        if op == "COPY" and not args.startswith("--from"):
            src, dest = args.split()
            target = root / dest.lstrip("/")
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / src, target)
    pythonpath = image_env(ops)["PYTHONPATH"]
    mapped = os.pathsep.join(str(root / p.lstrip("/")) for p in pythonpath.split(":"))
    module = entry_module(ops)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    env["PYTHONPATH"] = mapped
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{dockerfile.parent.name}: import {module} failed:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_healthcheck_and_expose_use_the_same_port(dockerfile):
    ops = instructions(dockerfile)
    (exposed,) = [args for op, args in ops if op == "EXPOSE"]
    (health,) = [args for op, args in ops if op == "HEALTHCHECK"]
    assert f"127.0.0.1:{exposed}/" in health
    assert ("USER", "10001:10001") in ops


def test_dockerignore_lets_every_copied_path_in():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list style: everything else stays out of the build context"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        for src in re.findall(r"^COPY (?!--from)(\S+) ", text, flags=re.M):
            assert any(src == a or src.startswith(a + "/") for a in allowed), f"{dockerfile}: {src} is ignored"
