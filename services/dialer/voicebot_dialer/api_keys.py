"""The dialer API's Bearer keys and their scopes, from the setting and from a file re-read when it changes.

An entry is `<key>` or `<key>:<scope>`; entries are separated by commas (the variable
`VOICEBOT_DIALER_API_KEYS`) or by commas and newlines (the file `VOICEBOT_DIALER_API_KEYS_FILE`, where a
line starting with `#` is a comment). Scopes, each including the ones before it:

- `read`: every GET route (calls, campaigns, do-not-call, the event long poll);
- `place`: also every POST and DELETE route (create and cancel calls and campaigns, pause and resume
  campaigns, edit the do-not-call list); a key without a scope has this one (every key could do this
  before scopes existed);
- `admin`: also `overrides.transfer_number` in a dial job or campaign.

A key listed more than once (in one source or both) has the broadest of its scopes. The file is checked
at most once per `check_interval_s`, on requests; when its modification time, size or inode changed
it is read again, so replacing it (as the kubelet does with a mounted Secret) adds and revokes keys
without a restart.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voicebot_core.settings import is_public_default

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("read", "place", "admin")  # each includes the ones before it
DEFAULT_SCOPE = "place"


class InvalidKeyEntry(ValueError):
    """An entry with an unknown scope (the message names its position and scope, never the key)."""


def includes(granted: str, needed: str) -> bool:
    """Whether scope `granted` includes scope `needed`."""
    return SCOPES.index(granted) >= SCOPES.index(needed)


def parse_entry(entry: str, where: str) -> tuple[str, str]:
    """`(key, scope)` of `<key>` or `<key>:<scope>`. `where` names the entry in errors."""
    key, sep, scope = entry.strip().rpartition(":")
    if not sep:
        return entry.strip(), DEFAULT_SCOPE
    key, scope = key.strip(), scope.strip()
    if scope not in SCOPES:
        # the text after ':' is not printed: it may be part of a key that contains ':'
        raise InvalidKeyEntry(f"{where}: unknown scope after the last ':' (scopes: {', '.join(SCOPES)}; "
                              "a key may contain ':' only when a scope follows it)")
    if not key:
        raise InvalidKeyEntry(f"{where}: no key before ':{scope}'")
    return key, scope


def merge(keys: dict[str, str], key: str, scope: str) -> None:
    """Add `key` to `keys`, keeping the broadest scope when it is there already."""
    if key not in keys or includes(scope, keys[key]):
        keys[key] = scope


def parse_keys(text: str, where: str = "entry") -> dict[str, str]:
    """Key -> scope of comma-separated entries (the variable's syntax); raises InvalidKeyEntry."""
    keys: dict[str, str] = {}
    entries = [e for e in text.split(",") if e.strip()]
    for number, entry in enumerate(entries, 1):
        merge(keys, *parse_entry(entry, f"{where} {number}"))
    return keys


def parse_keys_file(text: str, strict: bool) -> tuple[dict[str, str], list[str]]:
    """Key -> scope of a keys file (lines of comma-separated entries, `#` comment lines), and the
    problems found. `strict`: raise InvalidKeyEntry on the first problem; otherwise skip the entry."""
    keys: dict[str, str] = {}
    problems: list[str] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for entry in (e for e in line.split(",") if e.strip()):
            try:
                merge(keys, *parse_entry(entry, f"line {line_number}"))
            except InvalidKeyEntry as exc:
                if strict:
                    raise
                problems.append(str(exc))
    return keys, problems


@dataclass(frozen=True)
class Caller:
    """The key a request presented and its scope."""

    key: str
    scope: str

    def allows(self, needed: str) -> bool:
        return includes(self.scope, needed)


class ApiKeyError(ValueError):
    """The keys file cannot be used at start (unreadable, an invalid entry, a placeholder key)."""


class ApiKeys:
    """The accepted keys: the setting's, plus the file's as it is now (checked at most once per
    `check_interval_s`)."""

    def __init__(self, inline: dict[str, str], path: str = "", allow_public: bool = False,
                 check_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._inline = dict(inline)
        self._path = Path(path) if path else None
        self._allow_public = allow_public
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = clock()
        self._keys = dict(self._inline)
        if self._path is not None:
            try:
                self._signature, file_keys = self._read(strict=True)
            except (OSError, ValueError) as exc:  # InvalidKeyEntry, UnicodeDecodeError
                raise ApiKeyError(f"VOICEBOT_DIALER_API_KEYS_FILE ({self._path}): {exc}") from None
            self._keys = self._combined(file_keys)

    def _read(self, strict: bool) -> tuple[tuple[int, int, int], dict[str, str]]:
        assert self._path is not None
        stat = os.stat(self._path)
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        try:
            text = self._path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidKeyEntry("not UTF-8 text") from None
        keys, problems = parse_keys_file(text, strict)
        placeholders = [k for k in keys if is_public_default(k)]
        if placeholders and not self._allow_public:
            message = (f"{len(placeholders)} key(s) are `change-me...` placeholders, refused outside development "
                       "mode (VOICEBOT_DEV_MODE)")
            if strict:
                raise InvalidKeyEntry(message)
            problems.append(message + "; skipped")
            keys = {k: s for k, s in keys.items() if k not in placeholders}
        for problem in problems:
            log.error("dialer API keys file %s: %s", self._path, problem)
        return signature, keys

    def _combined(self, file_keys: dict[str, str]) -> dict[str, str]:
        keys = dict(self._inline)
        for key, scope in file_keys.items():
            merge(keys, key, scope)
        return keys

    def _refresh(self) -> None:
        """Re-read the file when it changed (at most one check per interval). An unreadable file
        leaves only the setting's keys: a key removed from the file never outlives it."""
        if self._path is None or self._clock() - self._checked_at < self._interval:
            return
        with self._lock:
            if self._clock() - self._checked_at < self._interval:
                return
            self._checked_at = self._clock()
            try:
                stat = os.stat(self._path)
                if (stat.st_mtime_ns, stat.st_size, stat.st_ino) == self._signature:
                    return
                self._signature, file_keys = self._read(strict=False)
            except (OSError, InvalidKeyEntry) as exc:
                if self._signature is not None:
                    log.error("dialer API keys file %s unreadable (%s): only VOICEBOT_DIALER_API_KEYS's keys "
                              "are accepted until it is back", self._path, exc)
                self._signature, file_keys = None, {}
            self._keys = self._combined(file_keys)
            log.info("dialer API keys file %s re-read: %d key(s) accepted in all", self._path, len(self._keys))

    def caller(self, presented: str) -> Caller | None:
        """The caller presenting `presented`, or None for an unknown key (compared in constant time)."""
        self._refresh()
        found: Caller | None = None
        for key, scope in self._keys.items():
            if hmac.compare_digest(presented.encode(), key.encode()):
                found = Caller(key, scope)
        return found
