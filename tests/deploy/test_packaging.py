"""The source folders are listed once (pyproject.toml); make, bin/ and ruff agree with that list."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import REPO

SCRIPT = REPO / "scripts" / "pythonpath.py"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PYTEST_INI = PYPROJECT["tool"]["pytest"]["ini_options"]
SOURCES = [p for p in PYTEST_INI["pythonpath"] if p not in PYTEST_INI["testpaths"]]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def top_level_modules(folder: Path) -> set[str]:
    return {p.parent.name for p in folder.glob("*/__init__.py")} | {p.stem for p in folder.glob("*.py")}


def test_make_and_the_script_print_the_pytest_list():
    expected = ":".join(str(REPO / p) for p in SOURCES)
    assert run(sys.executable, str(SCRIPT)).stdout.strip() == expected
    made = run("make", "-s", "-C", str(REPO), "print-pythonpath", f"PYTHON={sys.executable}", cwd=Path("/"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == expected


def test_devstack_starts_processes_with_the_same_list():
    # voicebot_devstack.processes (and tests/helpers through it) sets PYTHONPATH for the processes it
    # starts, read from pyproject.toml like everything else.
    from voicebot_devstack.processes import SOURCE_DIRS

    assert list(SOURCE_DIRS) == SOURCES


def test_every_source_folder_holds_a_package():
    for folder in SOURCES:
        assert top_level_modules(REPO / folder), f"{folder}: no package (listed in pyproject.toml pythonpath)"


def test_ruff_first_party_names_the_source_packages():
    known = set(PYPROJECT["tool"]["ruff"]["lint"]["isort"]["known-first-party"])
    sources = set().union(*(top_level_modules(REPO / f) for f in SOURCES))
    test_helpers = set().union(*(top_level_modules(REPO / f) for f in PYTEST_INI["testpaths"]))
    assert sources <= known, f"add to [tool.ruff.lint.isort] known-first-party: {sorted(sources - known)}"
    assert known <= sources | test_helpers, f"not a source package: {sorted(known - sources - test_helpers)}"


@pytest.mark.parametrize("path", ["Makefile", "bin/voicebot", "bin/voicebot-emulator", "docker/Dockerfile",
                                  ".dockerignore"])
def test_no_other_copy_of_the_list(path):
    text = (REPO / path).read_text()
    assert not [f for f in SOURCES if f in text], f"{path} names source folders: read scripts/pythonpath.py"


def test_an_image_folder_outside_the_list_is_refused(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "pythonpath.py").write_text(SCRIPT.read_text())
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["packages/core", "tests"]\ntestpaths = ["tests"]\n'
        '[tool.voicebot.images]\ngateway = ["packages/core", "services/gateway"]\n')
    result = run(sys.executable, str(tmp_path / "scripts" / "pythonpath.py"), "images", cwd=tmp_path)
    assert result.returncode == 1
    assert "image gateway lists ['services/gateway']" in result.stderr
