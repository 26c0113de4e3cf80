"""Where recordings and transcripts are kept: an S3-compatible bucket, or a directory for local development.

Both backends offer the same four blocking calls (the bot-worker runs them in a thread). Keys are
relative, `/`-separated paths; a key that could leave the store's root (`..`, a leading `/`, empty
parts) is refused, so a call SID taken from a URL cannot name a file elsewhere.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from voicebot_core.settings import CommonSettings

KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class InvalidKey(ValueError):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified_at: float  # Unix time


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes; None when there is none."""

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `prefix` (a folder: ends with `/`), by key."""

    def delete(self, keys: Iterable[str]) -> None: ...

    def describe(self, prefix: str) -> str:
        """Where `prefix` lives, for people (a directory, an s3:// URL)."""


def check_key(key: str, folder: bool = False) -> str:
    parts = key.split("/")
    if folder:
        if parts[-1] != "":
            raise InvalidKey(f"not a folder key: {key!r}")
        parts = parts[:-1]
    if not parts or not all(KEY_PART.match(part) for part in parts):
        raise InvalidKey(f"not a valid object key: {key!r}")
    return key


class FilesystemObjectStore:
    """Objects as files below `root`. A put writes a temporary file and renames it, so a reader (or a
    crash) never sees half an object."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str, folder: bool = False) -> Path:
        return self.root.joinpath(*check_key(key, folder).rstrip("/").split("/"))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def list(self, prefix: str) -> list[StoredObject]:
        folder = self._path(prefix, folder=True) if prefix else self.root
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(".put-"):
                stat = path.stat()
                found.append(StoredObject(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            for parent in path.parents:  # drop folders left empty, up to the root
                if parent == self.root or not parent.is_relative_to(self.root):
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break

    def describe(self, prefix: str) -> str:
        return str(self._path(prefix, folder=True) if prefix else self.root)


class S3ObjectStore:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...) through the MinIO client."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, *, secure: bool = True,
                 region: str = "", prefix: str = "") -> None:
        from minio import Minio  # only the services that store call data install it

        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                             region=region or None)
        self._bucket = bucket
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._endpoint = endpoint

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._client.put_object(self._bucket, self._prefix + check_key(key), io.BytesIO(data), len(data),
                                content_type=content_type)

    def get(self, key: str) -> bytes | None:
        from minio.error import S3Error

        try:
            response = self._client.get_object(self._bucket, self._prefix + check_key(key))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def list(self, prefix: str) -> list[StoredObject]:
        if prefix:
            check_key(prefix, folder=True)
        found = []
        for item in self._client.list_objects(self._bucket, prefix=self._prefix + prefix, recursive=True):
            if item.is_dir or item.object_name is None:
                continue
            modified = item.last_modified.timestamp() if item.last_modified else 0.0
            found.append(StoredObject(item.object_name[len(self._prefix):], item.size or 0, modified))
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: Iterable[str]) -> None:
        from minio.deleteobjects import DeleteObject

        batch = [DeleteObject(self._prefix + check_key(key)) for key in keys]
        for start in range(0, len(batch), 1000):  # S3 deletes at most 1000 keys per request
            errors = list(self._client.remove_objects(self._bucket, batch[start:start + 1000]))
            if errors:
                raise OSError(f"could not delete {len(errors)} objects, first: {errors[0].name}: "
                              f"{errors[0].message}")

    def describe(self, prefix: str) -> str:
        return f"s3://{self._bucket}/{self._prefix}{prefix}"


def object_store(settings: CommonSettings) -> ObjectStore:
    """The backend the settings name (`VOICEBOT_STORAGE_BACKEND`)."""
    if settings.storage_backend == "s3":
        return S3ObjectStore(settings.storage_s3_endpoint, settings.storage_s3_bucket,
                             settings.storage_s3_access_key.get_secret_value(),
                             settings.storage_s3_secret_key.get_secret_value(), secure=settings.storage_s3_secure,
                             region=settings.storage_s3_region, prefix=settings.storage_s3_prefix)
    return FilesystemObjectStore(settings.storage_dir)
