"""Caller scripts: what the simulated phone says and does, step by step.

The emulator's phone plays them; the bot-worker's fake STT reads the `say` texts in order from the
same files, so `utterances()` is the single definition of "what the caller says". The builtin
scripts ship in ./scripts, next to this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUILTIN_DIR = Path(__file__).parent / "scripts"
STEP_KINDS = frozenset({"wait_for_bot", "say", "barge_in", "backchannel", "silence", "pause", "dtmf", "play",
                        "expect_hangup", "hangup"})
TALKING_OVER = ("barge_in", "backchannel")  # said while the bot talks: `say` (a backchannel cut to `seconds`)


class ScriptError(ValueError):
    """A caller script that cannot be loaded or has an invalid step."""


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Script:
    name: str
    steps: tuple[Step, ...]
    voice: str = "formant"
    base_dir: Path = BUILTIN_DIR  # relative `play` paths resolve against the script's folder


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _step(raw: Any, index: int) -> Step:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ScriptError(f"step {index}: expected a mapping with one key, got {raw!r}")
    ((kind, value),) = raw.items()
    if kind not in STEP_KINDS:
        raise ScriptError(f"step {index}: unknown step {kind!r} (known: {', '.join(sorted(STEP_KINDS))})")
    if kind == "say":
        return Step("say", {"text": str(value)})
    if kind in ("silence", "pause"):
        return Step("silence", {"seconds": float(value)})
    if kind == "dtmf":
        return Step("dtmf", {"digits": str(value)})
    if kind == "play":
        return Step("play", {"path": str(value)})
    args = dict(value or {})
    if kind == "backchannel" and "say" not in args and "play" not in args:
        raise ScriptError(f"step {index}: backchannel needs a `say` text or a `play` WAV (a cough, line noise)")
    if kind == "barge_in" and "say" not in args:
        raise ScriptError(f"step {index}: barge_in needs a `say` text")
    return Step(kind, args)


def parse(data: Mapping[str, Any], *, default_name: str = "inline", base_dir: Path = BUILTIN_DIR) -> Script:
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise ScriptError("a caller script needs a `steps` list")
    return Script(
        name=str(data.get("name") or default_name),
        steps=tuple(_step(raw, i) for i, raw in enumerate(steps)),
        voice=str(data.get("voice") or "formant"),
        base_dir=base_dir,
    )


def load(spec: str | Mapping[str, Any] | Script) -> Script:
    """A builtin name ("three-turns"), a YAML file path, YAML text, or an already parsed mapping."""
    if isinstance(spec, Script):
        return spec
    if isinstance(spec, Mapping):
        return parse(spec)
    builtin = BUILTIN_DIR / f"{spec}.yaml"
    if "\n" not in spec and builtin.is_file():
        return load_file(builtin)
    path = Path(spec)
    if "\n" not in spec and path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ScriptError(f"caller script file {spec} does not exist")
        return load_file(path)
    data = yaml.safe_load(spec)
    if not isinstance(data, Mapping):
        raise ScriptError(f"unknown caller script {spec!r} (builtins: {', '.join(builtin_names())})")
    return parse(data)


def load_file(path: Path) -> Script:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, Mapping):
        raise ScriptError(f"{path}: not a YAML mapping")
    return parse(data, default_name=path.stem, base_dir=path.parent)


def utterances(script: str | Mapping[str, Any] | Script) -> list[str]:
    """What the caller says, in order: every `say`, `barge_in.say` and `backchannel.say` (a backchannel
    that plays a sound says nothing)."""
    return [str(step.args["text"] if step.kind == "say" else step.args["say"])
            for step in load(script).steps if step.kind == "say" or (step.kind in TALKING_OVER and "say" in step.args)]
