"""docker/locks/<image>.lock: up to date, and holding every package the image's code imports.

scripts/image_locks.py computes each image's lock from the source folders' pyproject.toml files,
requirements.lock and the installed metadata; docker/Dockerfile installs that lock and nothing
else. These tests read the code instead of the declarations: every third-party module an image's
process can import (statically, lazy imports included) must come from a package of its lock.
No Docker engine needed; the distributions are looked up in this venv (the one of requirements.lock).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from .conftest import REPO
from .import_walk import module_file, module_imports
from .test_images import IMAGES, SOURCES, TARGETS, chain, compile_modules, entry_module

LOCK_DIR = REPO / "docker" / "locks"

# Where each image's process starts: what the walk below starts from. The Dockerfile's CMD or
# ENTRYPOINT of the target must be one of them (test_entries_match_the_dockerfile).
ENTRIES: dict[str, list[str]] = {
    "gateway": ["voicebot_gateway.__main__", "voicebot_gateway.media_relay"],
    "dialer-api": ["voicebot_dialer.api"],
    # python -m voicebot_dialer.worker, which loads the Celery app (celery_app) once the metrics
    # directory is ready.
    "dialer-worker": ["voicebot_dialer.worker", "voicebot_dialer.celery_app"],
    # Providers are chosen by configuration at run time: every module may run (but the LLM server,
    # its own image).
    "bot-worker": ["voicebot_worker.*"],
    "llm-server": ["voicebot_worker.llm_server"],
    "emulator": ["voicebot_emulator.__main__", "voicebot_emulator.app"],
}
EXCLUDED = {"bot-worker": {"voicebot_worker.llm_server"}}

# Imports the walk finds but the image's lock lacks on purpose, each with its reason. Only a package a
# source folder declares in an extra the image does not install may be listed (checked below), and
# an entry no longer needed fails the test, so the list cannot hide a real gap.
NOT_INSTALLED: dict[str, dict[str, str]] = {}

# Heavy packages only the bot-worker (or llm-server) needs, and development/test tools no image needs.
AUDIO_AND_ML = {"pipecat-ai", "onnxruntime", "numpy", "faster-whisper", "xllamacpp", "torch"}
LIGHT_IMAGES = ["gateway", "dialer-api", "dialer-worker"]
DEV_ONLY = {"pytest", "ruff", "kubernetes", "rotel"}
# OTLP over gRPC stays in the dev venv (packages/core extra otlp-grpc); the images export http/protobuf.
GRPC = {"grpcio", "opentelemetry-exporter-otlp-proto-grpc"}


def lock(image: str) -> dict[str, str]:
    """canonical name -> version, from docker/locks/<image>.lock."""
    pins = {}
    for line in (LOCK_DIR / f"{image}.lock").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[canonicalize_name(name)] = version
    return pins


def run_script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "scripts" / "image_locks.py"), *args], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)


# --- the locks are current --------------------------------------------------------------------------

def test_locks_are_up_to_date():
    result = run_script(REPO, "check")
    assert result.returncode == 0, f"scripts/image_locks.py check:\n{result.stdout}{result.stderr}"
    assert sorted(p.stem for p in LOCK_DIR.glob("*.lock")) == TARGETS


# --- static import walk ------------------------------------------------------------------------------

def image_folders(image: str) -> list[Path]:
    return [REPO / folder for folder in IMAGES[image]]


def first_party_top_levels() -> set[str]:
    return {p.parent.name for folder in SOURCES for p in (REPO / folder).glob("*/__init__.py")}


def expand_entries(image: str) -> list[str]:
    modules: list[str] = []
    for entry in ENTRIES[image]:
        if entry.endswith(".*"):
            package = entry[:-2]
            (folder,) = [f for f in image_folders(image) if (f / package).is_dir()]
            modules += sorted(".".join(p.relative_to(folder).with_suffix("").parts).removesuffix(".__init__")
                              for p in (folder / package).rglob("*.py") if "__pycache__" not in p.parts)
        else:
            modules.append(entry)
    return [m for m in modules if m not in EXCLUDED.get(image, set())]


def walk(image: str) -> tuple[set[str], set[str], set[str], list[str]]:
    """From the image's entries through its first-party modules: (first-party modules reached,
    third-party modules imported, third-party names that may be modules, first-party modules missing)."""
    folders = image_folders(image)
    ours = first_party_top_levels()
    todo = expand_entries(image)
    seen: set[str] = set()
    third_party: set[str] = set()
    third_party_maybe: set[str] = set()
    missing: list[str] = []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(folders, module)
        if path is None:
            missing.append(module)
            continue
        # A submodule's parent packages run first.
        todo += [module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)]
        required, maybe = module_imports(path, module)
        for name in required:
            top = name.partition(".")[0]
            if top in ours:
                todo.append(name)
            elif top not in sys.stdlib_module_names:
                third_party.add(name)
        for name in maybe:
            top = name.partition(".")[0]
            if top in ours:
                if module_file(folders, name):  # `from voicebot_x import name`: name is a module
                    todo.append(name)
            elif top not in sys.stdlib_module_names:
                third_party_maybe.add(name)
    return seen - set(missing), third_party, third_party_maybe, missing


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def _dist_modules(dist_name: str) -> frozenset[str]:
    """Dotted module and package names a distribution's files provide (from its RECORD)."""
    names: set[str] = set()
    for file in metadata.distribution(dist_name).files or []:
        parts = file.parts
        if not parts or not file.name.endswith((".py", ".pyi", ".so", ".pyd")):
            continue
        if any(".dist-info" in p or ".data" in p or p == ".." for p in parts):
            continue
        stem = file.name.split(".")[0]
        module_parts = list(parts[:-1]) + ([] if stem == "__init__" else [stem])
        names |= {".".join(module_parts[:n]) for n in range(1, len(module_parts) + 1)}
    return frozenset(names)


def distributions_of(module: str) -> set[str]:
    """The distributions (canonical names) providing `module`: packages_distributions() for its
    top-level name and, where several share it (namespace packages: google, opentelemetry), the
    ones whose files hold the longest prefix of the dotted name."""
    candidates = _packages_distributions().get(module.partition(".")[0], [])
    if len(set(map(canonicalize_name, candidates))) <= 1:
        return set(map(canonicalize_name, candidates))
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        owners = {canonicalize_name(d) for d in candidates if prefix in _dist_modules(d)}
        if owners:
            return owners
    return set(map(canonicalize_name, candidates))


@pytest.mark.parametrize("image", TARGETS)
def test_entries_match_the_dockerfile(image):
    """The walk starts where the container does (CMD/ENTRYPOINT), and covers what the target's
    `compile` line imports at build time."""
    assert set(ENTRIES) == set(TARGETS), "an entry list for every docker/Dockerfile target"
    modules = expand_entries(image)
    start = entry_module(chain(image))
    assert start in modules, f"{image}: the Dockerfile starts {start}, the walk starts from {modules}"
    reached = walk(image)[0]
    for compiled in compile_modules(image):
        if compiled.startswith("voicebot_"):
            assert compiled in reached, f"{image}: the compile line imports {compiled}, which the walk misses"
        else:
            assert distributions_of(compiled) & set(lock(image)), f"{image}: compile line imports {compiled}"


def declared_extras() -> dict[str, set[str]]:
    """Distribution -> the `project[extra]` names of the source folders that declare it in an extra."""
    from packaging.requirements import Requirement

    found: dict[str, set[str]] = {}
    for folder in SOURCES:
        project = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
        for extra, reqs in project.get("optional-dependencies", {}).items():
            for req in reqs:
                found.setdefault(canonicalize_name(Requirement(req).name), set()).add(f"{project['name']}[{extra}]")
    return found


@pytest.mark.parametrize("image", TARGETS)
def test_every_third_party_import_is_in_the_image_lock(image):
    reached, third_party, maybe, missing = walk(image)
    assert not missing, f"{image}: first-party modules not in its source folders: {sorted(missing)}"
    assert image == "llm-server" or any(m.startswith("voicebot_core") for m in reached), sorted(reached)
    pinned = set(lock(image))
    unknown = sorted(m for m in third_party if not distributions_of(m))
    assert not unknown, f"{image}: imports that no installed distribution provides: {unknown}"
    absent: dict[str, set[str]] = {}
    # `from a import b`: a.b too, when it is a module (it may belong to another distribution of a
    # namespace package, e.g. opentelemetry.trace)
    for module in sorted(third_party | {m for m in maybe if m.rpartition(".")[0] in third_party}):
        dists = distributions_of(module)
        if dists and not dists & pinned:
            absent.setdefault(module.partition(".")[0], set()).update(dists)
    allowed = NOT_INSTALLED.get(image, {})
    extras = declared_extras()
    for top in allowed:
        assert top in absent, f"{image}: NOT_INSTALLED[{top!r}] is no longer needed: remove it"
        assert all(extras.get(d) for d in absent[top]), f"{image}: {top} is not an optional extra of a source folder"
    absent = {top: dists for top, dists in absent.items() if top not in allowed}
    assert not absent, (f"{image} imports packages its lock lacks (declare them in the source folder's "
                        f"pyproject.toml, then scripts/image_locks.py write): "
                        + ", ".join(f"{m} ({'/'.join(sorted(d))})" for m, d in sorted(absent.items())))


# --- what stays out ------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", LIGHT_IMAGES)
def test_light_images_hold_no_audio_or_ml_packages(image):
    assert not AUDIO_AND_ML & set(lock(image)), f"{image}: {sorted(AUDIO_AND_ML & set(lock(image)))}"


@pytest.mark.parametrize("image", TARGETS)
def test_no_image_holds_dev_tools_or_grpc(image):
    names = set(lock(image))
    dev = {n for n in names if n in DEV_ONLY or n.startswith("pytest-")}
    assert not dev, f"{image}: development tools in the image lock: {sorted(dev)}"
    assert not GRPC & names, f"{image}: OTLP over gRPC belongs to the dev venv only: {sorted(GRPC & names)}"


def test_dialer_uses_phonenumberslite():
    for image in ("dialer-api", "dialer-worker"):
        names = set(lock(image))
        assert "phonenumberslite" in names and "phonenumbers" not in names, image


# --- broken declarations are caught --------------------------------------------------------------------

@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """What scripts/image_locks.py reads, in the same layout: the root pyproject.toml, requirements.lock,
    requirements.in, the source folders' pyproject.toml files and docker/locks."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = [p for p in config["tool"]["pytest"]["ini_options"]["pythonpath"]
               if (REPO / p / "pyproject.toml").is_file()]
    for rel in ["pyproject.toml", "requirements.lock", "requirements.in", "scripts/image_locks.py",
                *(f"{folder}/pyproject.toml" for folder in folders),
                *(p.relative_to(REPO).as_posix() for p in LOCK_DIR.glob("*.lock"))]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    result = run_script(tmp_path, "check")
    assert result.returncode == 0, f"the unchanged copy must pass:\n{result.stderr}"
    return tmp_path


def dependencies(pyproject: Path) -> list[str]:
    return tomllib.loads(pyproject.read_text())["project"]["dependencies"]


def drop_dependency(pyproject: Path, name: str) -> None:
    text = re.sub(rf'"{re.escape(name)}"\s*(,\s*)?', "", pyproject.read_text(), count=1)
    pyproject.write_text(text)
    assert name not in dependencies(pyproject)


def add_dependency(pyproject: Path, name: str) -> None:
    text = re.sub(r"^dependencies\s*=\s*\[", rf'\g<0>"{name}", ', pyproject.read_text(), count=1, flags=re.M)
    pyproject.write_text(text)
    assert name in dependencies(pyproject)


def test_a_dropped_dependency_makes_the_lock_stale(repo_copy):
    gateway = repo_copy / "services" / "gateway" / "pyproject.toml"
    assert "fastapi" in dependencies(gateway)
    drop_dependency(gateway, "fastapi")
    result = run_script(repo_copy, "check")
    assert result.returncode != 0
    assert "out of date (gateway)" in result.stderr, result.stderr  # the gateway's lock alone


def test_an_unpinned_dependency_is_named(repo_copy):
    gateway = repo_copy / "services" / "gateway" / "pyproject.toml"
    add_dependency(gateway, "unpinned-example-package")
    result = run_script(repo_copy, "check")
    assert result.returncode != 0
    assert "voicebot-gateway needs unpinned-example-package, which requirements.lock does not pin" in result.stderr

    # A pin gone from requirements.lock is reported the same way, for each project that needs it.
    drop_dependency(gateway, "unpinned-example-package")
    lock_file = repo_copy / "requirements.lock"
    lock_file.write_text("".join(line for line in lock_file.read_text().splitlines(keepends=True)
                                 if not line.lower().startswith("websockets==")))
    result = run_script(repo_copy, "check")
    assert result.returncode != 0
    assert "needs websockets, which requirements.lock does not pin" in result.stderr
