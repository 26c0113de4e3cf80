"""A digest of every Redis key under one prefix (names, types and DUMPed values), in one round trip:
a Lua script scans the prefix on the server. For the schemathesis run (tests/dialer/schemathesis_hooks.py),
which loads it with the API tools' Python: standard library only, a minimal RESP client."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

DIGEST_SCRIPT = """
local names, cursor = {}, '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, name in ipairs(page[2]) do names[#names + 1] = name end
until cursor == '0'
table.sort(names)
local parts = {}
for _, name in ipairs(names) do
  parts[#parts + 1] = name .. '=' .. redis.sha1hex(redis.call('DUMP', name) or '')
end
return redis.sha1hex(table.concat(parts, '|'))
"""


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(stream) -> object:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [_reply(stream) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected reply {line!r}")


def digest(redis_url: str, prefix: str) -> str:
    url = urlparse(redis_url)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=10) as sock:
        stream = sock.makefile("rb")
        db = (url.path or "/0").lstrip("/") or "0"
        sock.sendall(_command("SELECT", db) + _command("EVAL", DIGEST_SCRIPT, "0", f"{prefix}:*"))
        _reply(stream)
        return str(_reply(stream))
