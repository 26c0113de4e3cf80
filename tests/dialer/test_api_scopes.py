"""Per-key API scopes (read < place < admin) and key rotation through a keys file, without a restart
(issue 13), against real Redis and the real API."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from dialer_helpers import API_KEY, start_api, stop, wait_for
from fastapi.testclient import TestClient
from pydantic import ValidationError

from helpers.entry_points import GOOD_SECRETS, minimal_env, run_entry_point
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.api_keys import ApiKeys
from voicebot_dialer.settings import DialerSettings

CALL = {"to": "+14155550123", "agent_profile": "sales"}
CAMPAIGN = {"agent_profile": "sales", "contacts": [{"to": "+14155550124"}, {"to": "+14155550125"}]}
READ_KEY, PLACE_KEY, ADMIN_KEY = "r3ad-k3y-8c1f", "pl4ce-k3y-2b7d", "adm1n-k3y-5e9a"
TARGET = "+15550109999"
MARKUP = "+1555</Number><Dial>+1900</Dial>"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored_keys(sync_redis: redis.Redis, prefix: str) -> list[str]:
    return sorted(sync_redis.scan_iter(f"{prefix}:*"))


@pytest.fixture
def scoped_api(dialer_settings: DialerSettings) -> Iterator[TestClient]:
    """The API with one key of each scope, `place` written without a scope (a bare key)."""
    settings = dialer_settings.model_copy(update={
        "dialer_api_keys": f"{READ_KEY}:read, {PLACE_KEY} ,{ADMIN_KEY}:admin"})
    with TestClient(build_asgi_app(settings)) as client:
        yield client


def test_a_read_key_reads_and_is_refused_every_change(scoped_api: TestClient, sync_redis: redis.Redis,
                                                      dialer_settings: DialerSettings) -> None:
    job = scoped_api.post("/v1/calls", json=CALL, headers=bearer(PLACE_KEY)).json()
    campaign = scoped_api.post("/v1/campaigns", json=CAMPAIGN, headers=bearer(PLACE_KEY)).json()
    read = bearer(READ_KEY)
    for path, params in (("/v1/calls", {}), (f"/v1/calls/{job['id']}", {}), ("/v1/events", {"wait_s": 0}),
                         ("/v1/campaigns", {}), (f"/v1/campaigns/{campaign['id']}", {}), ("/v1/do-not-call", {}),
                         ("/v1/do-not-call/+14155550123", {}), ("/v1/call-records", {}), ("/v1/workers", {})):
        assert scoped_api.get(path, params=params, headers=read).status_code == 200, path
    before = {key: sync_redis.dump(key) for key in stored_keys(sync_redis, dialer_settings.redis_prefix)}
    refused = [
        scoped_api.post("/v1/calls", json=CALL, headers=read),
        scoped_api.post("/v1/calls", json={"to": "+1555"}, headers=read),  # the scope is checked first
        scoped_api.post(f"/v1/calls/{job['id']}/cancel", headers=read),
        scoped_api.delete(f"/v1/calls/{job['id']}", headers=read),
        scoped_api.post("/v1/campaigns", json=CAMPAIGN, headers=read),
        scoped_api.post("/v1/campaigns/upload", files={"contacts": ("c.csv", "to\n+14155550126\n", "text/csv")},
                        headers=read),
        *(scoped_api.post(f"/v1/campaigns/{campaign['id']}/{verb}", headers=read)
          for verb in ("pause", "resume", "cancel")),
        scoped_api.post("/v1/do-not-call", json={"numbers": ["+14155550123"]}, headers=read),
        scoped_api.delete("/v1/do-not-call/+14155550123", headers=read),
        scoped_api.post(f"/v1/call-records/CA{'0' * 32}/hangup", headers=read),  # refused before looked up
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.json() == {"error": "this operation needs the `place` scope; this API key has `read`",
                                   "detail": []}
    assert {key: sync_redis.dump(key) for key in stored_keys(sync_redis, dialer_settings.redis_prefix)} == before
    assert scoped_api.get(f"/v1/calls/{job['id']}", headers=read).json()["state"] == "scheduled"
    # Unknown keys are still a 401, whatever the route.
    assert scoped_api.get("/v1/calls", headers=bearer("n0t-a-k3y")).status_code == 401
    assert scoped_api.post("/v1/calls", json=CALL, headers=bearer("n0t-a-k3y")).status_code == 401
    # A bare key is `place`: it creates and cancels, as every key could before scopes.
    assert scoped_api.post(f"/v1/calls/{job['id']}/cancel", headers=bearer(PLACE_KEY)).json()["state"] == "canceled"


def test_a_place_key_cannot_override_the_transfer_target(scoped_api: TestClient, sync_redis: redis.Redis,
                                                         dialer_settings: DialerSettings) -> None:
    place = bearer(PLACE_KEY)
    for target in (TARGET, MARKUP):
        response = scoped_api.post("/v1/calls", json={**CALL, "overrides": {"transfer_number": target}},
                                   headers=place)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["field"] == "body.overrides", error
        assert "transfer_number cannot be overridden per call with a `place` key" in error["message"]
        assert "overridable fields: persona, voice, language, greeting" in error["message"]
        campaign = scoped_api.post("/v1/campaigns", json={**CAMPAIGN, "overrides": {"transfer_number": target}},
                                   headers=place)
        assert campaign.status_code == 422 and campaign.json()["detail"][0]["field"] == "body.overrides"
        upload = scoped_api.post("/v1/campaigns/upload", headers=place,
                                 files={"contacts": ("c.csv", "to\n+14155550126\n", "text/csv")},
                                 data={"campaign": json.dumps({"overrides": {"transfer_number": target}})})
        assert upload.status_code == 422 and upload.json()["detail"][0]["field"] == "campaign.overrides"
    assert stored_keys(sync_redis, dialer_settings.redis_prefix) == []
    # null is no override
    created = scoped_api.post("/v1/calls", json={**CALL, "overrides": {"transfer_number": None}}, headers=place)
    assert created.status_code == 201, created.text


def test_an_admin_key_overrides_the_transfer_target_with_a_valid_one_only(
        scoped_api: TestClient, sync_redis: redis.Redis, dialer_settings: DialerSettings) -> None:
    admin = bearer(ADMIN_KEY)
    prefix = dialer_settings.redis_prefix
    for target in (MARKUP, "", "sip:desk@pbx.example.com", "+1555 0109999", "+1٥٥٥٠١٠٩٩٩٩", "tel:+15550109999"):
        response = scoped_api.post("/v1/calls", json={**CALL, "overrides": {"transfer_number": target}},
                                   headers=admin)
        assert response.status_code == 422, (target, response.text)
        (error,) = response.json()["detail"]
        assert error["field"] == "body.overrides.transfer_number", error
        campaign = scoped_api.post("/v1/campaigns", json={**CAMPAIGN, "overrides": {"transfer_number": target}},
                                   headers=admin)
        assert campaign.status_code == 422, campaign.text
        assert campaign.json()["detail"][0]["field"] == "body.overrides.transfer_number"
    assert stored_keys(sync_redis, prefix) == []

    overrides = {"goodbye": "Bye", "transfer_number": TARGET}
    job = scoped_api.post("/v1/calls", json={**CALL, "overrides": overrides}, headers=admin)
    assert job.status_code == 201, job.text
    stored = sync_redis.hgetall(f"{prefix}:dial-job:{job.json()['id']}")
    assert json.loads(stored["overrides"]) == overrides
    campaign = scoped_api.post("/v1/campaigns", json={**CAMPAIGN, "overrides": overrides}, headers=admin)
    assert campaign.status_code == 201, campaign.text
    upload = scoped_api.post("/v1/campaigns/upload", headers=admin,
                             files={"contacts": ("c.csv", "to\n+14155550126\n", "text/csv")},
                             data={"campaign": json.dumps({"overrides": {"transfer_number": TARGET}})})
    assert upload.status_code == 201, upload.text
    for campaign_id in (campaign.json()["id"], upload.json()["id"]):
        jobs = scoped_api.get("/v1/calls", params={"campaign_id": campaign_id}, headers=admin).json()["items"]
        assert jobs
        for item in jobs:
            stored = json.loads(sync_redis.hget(f"{prefix}:dial-job:{item['id']}", "overrides"))
            assert stored["transfer_number"] == TARGET


def test_an_allow_listed_sip_target_is_accepted_from_an_admin_key(dialer_settings: DialerSettings) -> None:
    settings = dialer_settings.model_copy(update={"dialer_api_keys": f"{ADMIN_KEY}:admin",
                                                  "transfer_sip_hosts": "pbx.example.com"})
    with TestClient(build_asgi_app(settings)) as client:
        client.headers.update(bearer(ADMIN_KEY))
        ok = client.post("/v1/calls", json={**CALL, "overrides": {"transfer_number": "sip:desk@pbx.example.com"}})
        assert ok.status_code == 201, ok.text
        other = client.post("/v1/calls", json={**CALL, "overrides": {"transfer_number": "sip:desk@evil.example"}})
        assert other.status_code == 422 and "evil.example" in other.json()["detail"][0]["message"]


def test_key_syntax_is_checked_at_load_without_printing_keys() -> None:
    for value, message in (("s3cr3t-k3y:amdin", "VOICEBOT_DIALER_API_KEYS entry 1: unknown scope"),
                           ("0k-k3y-1234, s3cr3t:k3y-p4rt", "VOICEBOT_DIALER_API_KEYS entry 2: unknown scope"),
                           (":read", "VOICEBOT_DIALER_API_KEYS entry 1: no key before ':read'")):
        with pytest.raises(ValidationError) as raised:
            DialerSettings(dev_mode=True, dialer_api_keys=value)
        assert message in str(raised.value), str(raised.value)
        assert "s3cr3t" not in str(raised.value) and "k3y" not in str(raised.value)
    keys = DialerSettings(dev_mode=True, dialer_api_keys="a-k3y, b-k3y:read,c-k3y:admin,a-k3y:read").api_keys
    assert keys == {"a-k3y": "place", "b-k3y": "read", "c-k3y": "admin"}  # a key listed twice: its broadest
    with pytest.raises(ValidationError, match="VOICEBOT_DIALER_API_KEYS"):
        DialerSettings(dev_mode=False, **{k.removeprefix("VOICEBOT_").lower(): v for k, v in GOOD_SECRETS.items()},
                       dialer_api_keys="0k-k3y-1234:admin,change-me-key:read")


def test_keys_file_entries_comments_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# rotated 2026-11-30\nf1le-k3y-a:read, f1le-k3y-b\n\n  # f1le-k3y-c:admin\nf1le-k3y-d:admin\n")
    now = [0.0]
    keys = ApiKeys({"env-k3y": "read", "f1le-k3y-a": "place"}, str(path), clock=lambda: now[0])
    assert keys.caller("f1le-k3y-a").scope == "place"  # listed in both: the broadest scope
    assert keys.caller("f1le-k3y-b").scope == "place" and keys.caller("f1le-k3y-d").scope == "admin"
    assert keys.caller("f1le-k3y-c") is None and keys.caller("env-k3y").scope == "read"
    # A bad entry after start is skipped, the rest of the file applies; a vanished file leaves the setting's keys.
    path.write_text("f1le-k3y-b:sudo\nf1le-k3y-e:read\nchange-me-key\n")
    assert keys.caller("f1le-k3y-e") is None  # not re-checked within the interval
    now[0] = 1.0
    assert keys.caller("f1le-k3y-e").scope == "read"
    assert keys.caller("f1le-k3y-b") is None and keys.caller("change-me-key") is None
    path.unlink()
    now[0] = 2.0
    assert keys.caller("f1le-k3y-e") is None and keys.caller("env-k3y").scope == "read"
    path.write_text("f1le-k3y-f\n")
    now[0] = 3.0
    assert keys.caller("f1le-k3y-f").scope == "place"


def test_the_api_refuses_to_start_with_an_unusable_keys_file(tmp_path: Path) -> None:
    cases = {"missing": None, "a bad entry": "k3y-0f-0ur-0wn-5a7c9e1b:sudo\n", "a placeholder": "change-me-key\n",
             "not UTF-8": b"k3y-0f-0ur-0wn-\xff\n"}
    for what, text in cases.items():
        path = tmp_path / f"keys-{what.replace(' ', '-')}"
        if isinstance(text, bytes):
            path.write_bytes(text)
        elif text is not None:
            path.write_text(text)
        env = minimal_env(tmp_path, **GOOD_SECRETS, VOICEBOT_DIALER_API_KEYS_FILE=str(path))
        result = run_entry_point("voicebot_dialer.api", env)
        assert result.returncode != 0, (what, result.stderr)
        assert "refusing to start" in result.stderr and "VOICEBOT_DIALER_API_KEYS_FILE" in result.stderr, what
        assert "Traceback" not in result.stderr and "k3y-0f-0ur-0wn" not in result.stderr, result.stderr


def test_keys_rotate_through_the_file_without_a_restart(dialer_settings: DialerSettings, tmp_path: Path) -> None:
    """As the kubelet rotates a Secret mounted as a volume: the file is replaced, the process keeps running."""
    key_a, key_b = "r0tat3-k3y-a-41f0", "r0tat3-k3y-b-93c2"
    path = tmp_path / "dialer-api-keys"
    path.write_text(f"# the dialer API's keys\n{key_a}\n")
    settings = dialer_settings.model_copy(update={"dialer_api_keys_file": str(path)})
    proc, url = start_api(settings, tmp_path / "api.log")
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            assert client.post("/v1/calls", json=CALL, headers=bearer(key_a)).status_code == 201
            assert client.get("/v1/calls", headers=bearer(key_b)).status_code == 401
            assert client.get("/v1/calls", headers=bearer(API_KEY)).status_code == 200  # the variable's keys stay

            replacement = tmp_path / "dialer-api-keys.new"
            replacement.write_text(f"# rotated\n{key_b}:read\n")
            stat = path.stat()
            os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
            os.replace(replacement, path)
            rotated_at = time.monotonic()
            wait_for(lambda: client.get("/v1/calls", headers=bearer(key_a)).status_code == 401, 5,
                     "key A to be revoked")
            # checked at most once per second; the slack is for a loaded CI machine
            assert time.monotonic() - rotated_at < 2.5
            assert client.get("/v1/calls", headers=bearer(key_b)).status_code == 200
            assert client.post("/v1/calls", json=CALL, headers=bearer(key_b)).status_code == 403  # B is read-only
            assert client.get("/v1/calls", headers=bearer(API_KEY)).status_code == 200
            assert proc.poll() is None  # the same process: no restart
    finally:
        stop(proc)
