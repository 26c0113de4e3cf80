"""The OpenAPI document is the dialer API's contract: docs/openapi.json is what the app serves,
schemathesis (every check, stateful phase included) finds no disagreement between the document and
the running API, and a client generated from the document places, reads and cancels a call.

schemathesis and openapi-python-client live in a venv of their own (scripts/fetch_api_tools.sh),
not in requirements.lock."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dialer_helpers import API_KEY, ROOT, start_api, stop
from fastapi.testclient import TestClient

from voicebot_dialer.settings import DialerSettings

DOCUMENT = ROOT / "docs" / "openapi.json"
HERE = Path(__file__).resolve().parent
# Fixed, so a run is reproducible; bounded, so it stays well under two minutes on a 2-core machine.
SEED = 1
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def api_tools() -> Path:
    """The API tools venv (installed on first use; later runs find it in place)."""
    tools_dir = os.environ.get("VOICEBOT_TOOLS_DIR", str(Path.home() / ".cache/voicebot/tools"))
    done = subprocess.run(["bash", str(ROOT / "scripts/fetch_api_tools.sh"), tools_dir], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def api_process(dialer_settings: DialerSettings, tmp_path: Path) -> Iterator[str]:
    """The API with API_KEY in the `admin` scope: every operation and field of the document is open to it."""
    settings = dialer_settings.model_copy(update={"dialer_api_keys": f"{API_KEY}:admin"})
    proc, url = start_api(settings, tmp_path / "api.log")
    yield url
    stop(proc)


def test_committed_document_is_what_the_app_serves(api: TestClient) -> None:
    served = api.get("/openapi.json").json()
    assert json.loads(DOCUMENT.read_text()) == served, "docs/openapi.json is stale: python scripts/export_openapi.py"


def test_document_describes_every_error_and_operation(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    operations = [op for path in doc["paths"].values() for op in path.values()]
    assert len({op["operationId"] for op in operations}) == len(operations) == 24
    for op in operations:
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert {"401", "422", "500", "503"} <= set(errors), op["operationId"]
        assert all(r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                   for r in errors.values()), op["operationId"]
    links = doc["paths"]["/v1/calls"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {"getCall", "cancelCall"}
    # Each documented error answers with the documented shape.
    assert api.get("/v1/calls/dj_nope").json() == {"error": "no dial job dj_nope", "detail": []}
    assert api.get("/v1/calls", headers={"Authorization": "Bearer nope"}).json()["detail"] == []
    invalid = api.post("/v1/calls", json={"to": "+1555"}).json()
    assert invalid["error"] == "invalid request" and invalid["detail"][0]["field"] == "body.to"
    not_allowed = api.put("/v1/calls")
    assert not_allowed.status_code == 405 and not_allowed.headers["allow"] == "GET, POST"


def test_schemathesis_finds_no_disagreement(api_tools: Path, api_process: str, tmp_path: Path,
                                           dialer_settings: DialerSettings) -> None:
    """Every check (schemathesis runs them all by default; tests/dialer/schemathesis.toml turns off one
    for the two call-media operations) and ours, nothing stored on a 4xx; all four phases (examples,
    coverage, fuzzing, stateful). The hooks module generates the document's own formats and keeps valid
    cases inside the rules a JSON Schema cannot state."""
    command = [str(api_tools / "bin/st"), "--config-file", str(HERE / "schemathesis.toml"), "run",
               f"{api_process}/openapi.json",
               "--phases", "examples,coverage,fuzzing,stateful", "--seed", str(SEED),
               "--max-examples", str(MAX_EXAMPLES), "--exclude-deprecated", "--workers", "2",
               "--generation-database", "none", "--no-color", "-H", f"Authorization: Bearer {API_KEY}",
               "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml")]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(HERE),
           "VOICEBOT_REDIS_URL": dialer_settings.redis_url, "VOICEBOT_REDIS_PREFIX": dialer_settings.redis_prefix}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    # A failure prints each case with "Reproduce with: curl ..." (and `st replay <id>`), and the seed.
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr[-3000:]}"
    # Warnings may remain ("Missing test data": fuzzed job ids are unknown, 404), failures may not.
    summary = done.stdout[done.stdout.rindex("SUMMARY"):]
    assert "Tested: 23" in summary and "failure" not in summary, done.stdout


def test_generated_client_places_reads_and_cancels_a_call(api_tools: Path, api_process: str,
                                                          tmp_path: Path) -> None:
    generated = subprocess.run(
        [str(api_tools / "bin/openapi-python-client"), "generate", "--path", str(DOCUMENT), "--meta", "none",
         "--output-path", str(tmp_path / "voicebot_dialer_client"), "--fail-on-warning",
         "--config", str(HERE / "openapi_client.yaml")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PATH": f"{api_tools / 'bin'}:{os.environ['PATH']}"})
    assert generated.returncode == 0, generated.stdout + generated.stderr
    done = subprocess.run([str(api_tools / "bin/python"), str(HERE / "generated_client_driver.py"), str(tmp_path),
                           api_process, API_KEY], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["created"] == {"status": 201, "id": result["read"]["id"], "to": "+14155550188",
                                 "state": "scheduled"}
    assert result["read"]["events"] == ["job.created"]
    assert result["canceled"] == {"state": "canceled", "outcome": "canceled", "terminal": True}
    assert result["missing"] == "no dial job dj_missing"
    assert result["invalid"] == ["body.to"]
