"""Both object-store backends, the S3 one against a real S3-compatible server (helpers.s3_server)."""

from __future__ import annotations

import pytest

from helpers.s3_server import S3Server, s3_server
from voicebot_core.object_store import FilesystemObjectStore, InvalidKey, ObjectStore, S3ObjectStore, object_store
from voicebot_core.settings import CommonSettings


@pytest.fixture(scope="module")
def s3() -> S3Server:
    with s3_server() as server:
        yield server


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path, s3) -> ObjectStore:
    if request.param == "filesystem":
        return FilesystemObjectStore(tmp_path / "objects")
    return S3ObjectStore(s3.endpoint, s3.bucket, s3.access_key, s3.secret_key, secure=False, region="us-east-1",
                         prefix=f"t-{tmp_path.name}")


def test_put_get_list_and_delete(store: ObjectStore) -> None:
    store.put("calls/CA1/recording/0001.wav", b"one", "audio/wav")
    store.put("calls/CA1/recording/0002.wav", b"two", "audio/wav")
    store.put("calls/CA2/transcript.json", b"[]", "application/json")
    assert store.get("calls/CA1/recording/0002.wav") == b"two"
    assert store.get("calls/CA1/recording/0003.wav") is None
    listed = store.list("calls/CA1/")
    assert [(o.key, o.size) for o in listed] == [("calls/CA1/recording/0001.wav", 3),
                                                 ("calls/CA1/recording/0002.wav", 3)]
    assert all(o.modified_at > 0 for o in listed)
    assert [o.key for o in store.list("")] == [o.key for o in listed] + ["calls/CA2/transcript.json"]
    store.put("calls/CA1/recording/0001.wav", b"again", "audio/wav")  # a put replaces
    assert store.get("calls/CA1/recording/0001.wav") == b"again"
    store.delete(["calls/CA1/recording/0001.wav", "calls/CA1/recording/0002.wav"])
    assert store.list("calls/CA1/") == []
    assert store.get("calls/CA2/transcript.json") == b"[]"


@pytest.mark.parametrize("key", ["../etc/passwd", "/calls/CA1", "calls//CA1", "calls/../../x", "calls/CA1/",
                                 "calls/.hidden", "calls/CA 1", ""])
def test_a_key_that_could_leave_the_root_is_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, b"x", "text/plain")
    with pytest.raises(InvalidKey):
        store.get(key)


def test_the_filesystem_backend_leaves_no_partial_files_and_prunes_empty_folders(tmp_path) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put("calls/CA1/transcript.json", b"[1]", "application/json")
    assert [p.name for p in (tmp_path / "calls" / "CA1").iterdir()] == ["transcript.json"]  # no temp file left
    store.delete(["calls/CA1/transcript.json"])
    assert list(tmp_path.iterdir()) == []


def test_settings_choose_the_backend(tmp_path, s3: S3Server) -> None:
    assert isinstance(object_store(CommonSettings(storage_dir=str(tmp_path))), FilesystemObjectStore)
    settings = CommonSettings(storage_backend="s3", storage_s3_endpoint=s3.endpoint, storage_s3_bucket=s3.bucket,
                              storage_s3_access_key=s3.access_key, storage_s3_secret_key=s3.secret_key,
                              storage_s3_secure=False, storage_s3_region="us-east-1", storage_s3_prefix="settings")
    store = object_store(settings)
    store.put("calls/CA9/transcript.json", b"[]", "application/json")
    assert store.get("calls/CA9/transcript.json") == b"[]"
    assert store.describe("calls/CA9/") == f"s3://{s3.bucket}/settings/calls/CA9/"


def test_the_s3_backend_needs_its_endpoint_bucket_and_keys() -> None:
    with pytest.raises(ValueError) as refused:
        CommonSettings(storage_backend="s3", storage_s3_endpoint="s3.example.com")
    message = str(refused.value)
    assert "VOICEBOT_STORAGE_S3_BUCKET" in message and "VOICEBOT_STORAGE_S3_SECRET_KEY" in message
    assert "VOICEBOT_STORAGE_S3_ENDPOINT" not in message
