"""docker/Dockerfile: one target per image, each holding what its command imports, as pyproject.toml says.

No Docker engine here: this parses the Dockerfile's stages, lays out each image's /app with
scripts/pythonpath.py (what the `sources` stage runs), adds the target's other COPY lines, and
imports what the target's `compile` line imports at build time with only the folders of the
image's voicebot.pth on sys.path. Each target's packages come from its own `deps-<image>` stage
(docker/locks/<image>.lock, offline from build/wheels): tests/deploy/test_image_locks.py checks
those locks against the code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO
from .import_walk import module_file, module_imports

DOCKERFILE = REPO / "docker" / "Dockerfile"
SITE_PACKAGES = "/opt/venv/lib/site-packages"  # stand-in: only the .pth file's content matters here

_spec = importlib.util.spec_from_file_location("pythonpath_script", REPO / "scripts" / "pythonpath.py")
pythonpath = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pythonpath)
SOURCES, IMAGES = pythonpath.load()


@dataclass
class Stage:
    name: str
    base: str
    ops: list[tuple[str, str]]  # (INSTRUCTION, arguments) after FROM


def parse_stages(dockerfile: Path) -> dict[str, Stage]:
    """Stages by name, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in filter(str.strip, text.splitlines()):
        op, _, args = line.strip().partition(" ")
        if op.upper() == "FROM":
            base, _, name = re.fullmatch(r"(\S+)(\s+as\s+(\S+))?", args.strip(), flags=re.I).groups()
            current = stages[name or str(len(stages))] = Stage(name or str(len(stages)), base, [])
        elif current is not None:
            current.ops.append((op.upper(), args.strip()))
    return stages


STAGES = parse_stages(DOCKERFILE)
# A target is a stage no other stage builds on or copies from.
_USED = {s.base for s in STAGES.values()} | {
    m for s in STAGES.values() for op, args in s.ops if op == "COPY" for m in re.findall(r"--from=(\S+)", args)}
TARGETS = sorted(name for name in STAGES if name not in _USED)
# The images the chart deploys (the emulator, for tests of the images, is not one of them).
CHART_IMAGES = set(re.findall(r"^\s*repository:\s*voicebot/([\w-]+)\s*$",
                              (REPO / "charts" / "voicebot" / "values.yaml").read_text(), flags=re.M))


def chain(target: str) -> list[tuple[str, str]]:
    """The target's instructions after those of the stages it builds on (what its image inherits)."""
    ops: list[tuple[str, str]] = []
    name = target
    while name in STAGES:
        ops = STAGES[name].ops + ops
        name = STAGES[name].base
    return ops


def entry_module(ops: list[tuple[str, str]]) -> str:
    command: list[str] = []
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


def test_targets_are_the_images_pyproject_lists():
    assert sorted(IMAGES) == TARGETS, "docker/Dockerfile targets vs [tool.voicebot.images] in pyproject.toml"
    for target in TARGETS:
        copies = [args for op, args in STAGES[target].ops if op == "COPY" and "--from=sources" in args]
        assert copies == [f"--from=sources /out/{target}/ /"], f"{target}: copy its own tree from `sources`"
    # No per-service Dockerfile left behind next to the shared one.
    assert sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("docker/**/Dockerfile*")) == ["docker/Dockerfile"]


def test_sources_stage_lays_out_the_images_from_pyproject():
    ops = STAGES["sources"].ops
    assert ("RUN", "/opt/venv/bin/python /src/scripts/pythonpath.py image-trees /out") in ops
    copied = [args.split()[0] for op, args in ops if op == "COPY"]
    assert {"pyproject.toml", "scripts/pythonpath.py"} <= set(copied)
    for image, folders in IMAGES.items():
        for folder in folders:
            assert any(folder == c or folder.startswith(c + "/") for c in copied), f"{image}: {folder} not copied"
    # The venv's Python runs the script: its site-packages is where voicebot.pth must go.
    assert STAGES["sources"].base == "venv"
    assert image_env(STAGES["venv"].ops)["PYTHONDONTWRITEBYTECODE"] == "1"
    assert ("RUN", "python3 -m venv /opt/venv") in STAGES["venv"].ops


def test_each_target_installs_only_its_own_lock_offline():
    """venv stage: the locks and wheels; deps-<image>: pip install of docker/locks/<image>.lock from
    /wheels with no index; each target copies the venv of its own deps stage, and nothing else."""
    assert ("COPY", "docker/locks /locks") in STAGES["venv"].ops
    assert ("COPY", "build/wheels /wheels") in STAGES["venv"].ops
    deps_stages = sorted(name for name in STAGES if name.startswith("deps-"))
    assert deps_stages == [f"deps-{t}" for t in TARGETS], "one deps-<image> stage per target"
    assert sorted(p.stem for p in (REPO / "docker" / "locks").glob("*.lock")) == TARGETS
    for target in TARGETS:
        deps = STAGES[f"deps-{target}"]
        assert deps.base == "venv", target
        (install,) = [args for op, args in deps.ops if op == "RUN"]
        pip, _, after = install.partition(" && ")
        assert pip.split()[:2] == ["/opt/venv/bin/pip", "install"], target
        flags = pip.split()[2:]
        assert {"--no-index", "--no-deps", "--no-compile", "--no-cache-dir"} <= set(flags), target
        assert flags[flags.index("--find-links") + 1] == "/wheels", target
        assert flags[flags.index("-r") + 1] == f"/locks/{target}.lock", target
        assert flags.count("-r") == 1 and not [f for f in flags if not f.startswith("-") and "/" not in f], \
            f"{target}: installs its lock and nothing else"
        # pip and setuptools leave the venv: nothing installs at run time
        assert after == "/opt/venv/bin/pip uninstall --quiet --yes pip setuptools", target
        venv_copies = [args for op, args in chain(target) if op == "COPY" and "/opt/venv" in args]
        assert venv_copies == [f"--from=deps-{target} /opt/venv /opt/venv"], target
    # No stage reaches a package index.
    for stage in STAGES.values():
        for op, args in stage.ops:
            if op == "RUN" and "pip install" in args:
                assert "--no-index" in args, f"{stage.name}: pip install without --no-index"


def compile_line(target: str) -> tuple[int, list[str]]:
    """(position in the target's ops, command) of its `compile` RUN: python -c '...' MODULE ..."""
    lines = [(i, json.loads(args)) for i, (op, args) in enumerate(STAGES[target].ops)
             if op == "RUN" and args.startswith("[") and "import_module" in args]
    assert len(lines) == 1, f"{target}: one compile line, found {len(lines)}"
    return lines[0]


def compile_modules(target: str) -> list[str]:
    return compile_line(target)[1][3:]


@pytest.mark.parametrize("target", TARGETS)
def test_compile_line_writes_the_start_up_bytecode(target):
    """The deps stages install with --no-compile: the target compiles what its process imports at
    start-up, as root (the venv and /app belong to root) and with bytecode writing turned back on
    (PYTHONDONTWRITEBYTECODE=1 everywhere else), then drops back to the unprivileged user."""
    ops = STAGES[target].ops
    index, command = compile_line(target)
    assert command[:2] == ["python", "-c"], target
    assert "sys.dont_write_bytecode = False" in command[2], target
    assert compile_modules(target), f"{target}: compiles nothing"
    users = [(i, args) for i, (op, args) in enumerate(ops) if op == "USER"]
    assert [a for i, a in users if i < index][-1] == "0:0", f"{target}: compile as root"
    assert next(a for i, a in users if i > index) == "10001:10001", f"{target}: back to the user after compiling"
    entry = entry_module(chain(target))
    if entry not in compile_modules(target):
        # only an entry that runs its process on import (no __main__ guard) may be left out
        path = module_file([REPO / f for f in IMAGES[target]], entry)
        assert path is not None and "__name__" not in path.read_text(), \
            f"{target}: the compile line leaves out the entry module {entry}"


def test_images_run_as_the_non_root_user_on_the_pinned_base():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), flags=re.M))
    assert f"{args['PYTHON_IMAGE']}:{args['PYTHON_TAG']}" == "python:3.11-slim-bookworm"
    assert not DOCKERFILE.read_text().startswith("# syntax="), "offline builds cannot pull a frontend image"
    for target in TARGETS:
        ops = chain(target)
        assert [a for op, a in ops if op == "USER"][-1] == "10001:10001", target
        assert image_env(ops)["HOME"] == "/tmp", target  # read-only root filesystem


@pytest.fixture(scope="session")
def trees(tmp_path_factory) -> Path:
    """What the `sources` stage produces: /out/<image>/... for every image."""
    out = tmp_path_factory.mktemp("out")
    pythonpath.image_trees(IMAGES, out, SITE_PACKAGES)
    return out


def image_root(target: str, trees: Path, tmp_path: Path) -> Path:
    """The target's filesystem below /app and the site-packages, rebuilt from its COPY lines."""
    root = tmp_path / "image"
    for op, args in chain(target):
        if op != "COPY":
            continue
        if args.startswith("--from=sources"):
            shutil.copytree(trees / target, root, dirs_exist_ok=True)
        elif not args.startswith("--from"):
            src, dest = args.split()
            target_path = root / dest.lstrip("/")
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target_path, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / src, target_path)
    return root


def image_path(root: Path) -> list[Path]:
    """The folders the image's voicebot.pth puts on sys.path, inside the rebuilt root."""
    pth = root / SITE_PACKAGES.lstrip("/") / pythonpath.PTH_NAME
    return [root / line.lstrip("/") for line in pth.read_text().split()]


@pytest.mark.parametrize("target", TARGETS)
def test_image_sources_are_complete(target, trees, tmp_path):
    """What the build's compile line imports, imported here with only the image's folders on
    sys.path; the entry module is found there too (it is not imported: some run on import)."""
    ops = chain(target)
    root = image_root(target, trees, tmp_path)
    folders = image_path(root)
    assert folders == [root / "app" / f for f in IMAGES[target]]
    module = entry_module(ops)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    env["PYTHONPATH"] = os.pathsep.join(map(str, folders))
    # as the compile line does: modules that load settings at import refuse the built-in secrets otherwise
    assert "os.environ['VOICEBOT_DEV_MODE'] = 'true'" in compile_line(target)[1][2], target
    env["VOICEBOT_DEV_MODE"] = "true"
    code = ("import importlib, importlib.util, sys\n"
            "for m in sys.argv[2:]: importlib.import_module(m)\n"
            "spec = importlib.util.find_spec(sys.argv[1])\n"
            "assert spec is not None and spec.origin, sys.argv[1]\n"
            "print(spec.origin)\n")
    result = subprocess.run([sys.executable, "-c", code, module, *compile_modules(target)], cwd=root, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{target}: imports failed:\n{result.stderr[-2000:]}"
    assert Path(result.stdout.strip()).is_relative_to(root / "app"), f"{target}: {module} from {result.stdout}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_voicebot_import_resolves_in_the_image(target, trees, tmp_path):
    """Static and transitive from the entry module: also lazy imports that the import above misses
    (e.g. the bot-worker's fake providers, which import voicebot_simulation on first use)."""
    root = image_root(target, trees, tmp_path)
    folders = image_path(root)
    start = entry_module(chain(target))
    todo, seen, missing = [start], set(), []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(folders, module)
        if path is None:
            missing.append(module)
            continue
        required, maybe = module_imports(path, module)
        todo += [m for m in required if m.startswith("voicebot_")]
        todo += [m for m in maybe if m.startswith("voicebot_") and module_file(folders, m)]
        # A submodule's parent packages run first.
        todo += [module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)]
    assert not missing, f"{target} (from {start}) imports what the image lacks: {sorted(missing)}"


@pytest.mark.parametrize("target", TARGETS)
def test_healthcheck_and_expose_use_the_same_port(target):
    """Every image the chart deploys has a HEALTHCHECK; any HEALTHCHECK calls the exposed port."""
    ops = chain(target)
    (exposed,) = [args for op, args in ops if op == "EXPOSE"]
    health = [args for op, args in ops if op == "HEALTHCHECK"]
    if target in CHART_IMAGES:
        assert len(health) == 1, f"{target}: deployed by the chart, needs one HEALTHCHECK"
    assert all(f"127.0.0.1:{exposed}/" in h for h in health), target


def test_the_chart_deploys_images_of_the_dockerfile():
    assert CHART_IMAGES, "no voicebot/<image> repository in charts/voicebot/values.yaml"
    assert set(TARGETS) >= CHART_IMAGES, sorted(CHART_IMAGES - set(TARGETS))


def test_dockerignore_lets_every_copied_path_in():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list style: everything else stays out of the build context"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    sources = [args.split()[0] for stage in STAGES.values() for op, args in stage.ops
               if op == "COPY" and not args.startswith("--from")]
    for src in sources + [f for folders in IMAGES.values() for f in folders]:
        assert any(src == a or src.startswith(a + "/") for a in allowed), f"{src} is ignored by .dockerignore"
