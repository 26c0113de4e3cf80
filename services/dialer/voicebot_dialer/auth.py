"""Bearer authentication and per-key scopes of the dialer API's routes (keys: voicebot_dialer.api_keys).

A route declares the scope it needs with `**auth.route("read" | "place" | "admin")`: the dependency
that answers 401 (unknown key) or 403 (the key's scope does not include it), and the OpenAPI extension
`x-required-scope` that openapi_doc turns into the operation's documentation."""

# No `from __future__ import annotations`: FastAPI resolves the closures' Depends() at runtime.

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from voicebot_dialer.api_keys import SCOPES, ApiKeys, Caller

SCOPE_EXTENSION = "x-required-scope"
SCHEME_DESCRIPTION = (
    "An API key of the deployment (`VOICEBOT_DIALER_API_KEYS`, `VOICEBOT_DIALER_API_KEYS_FILE`). Each key has "
    "one scope, each including the ones before it: `read` (every GET), `place` (also every POST and DELETE: "
    "create and cancel calls and campaigns, pause and resume campaigns, the do-not-call list; a key written "
    "without a scope has this one), `admin` (also `overrides.transfer_number`). Each operation names the scope "
    "it needs; a key without it gets 403, an unknown key 401.")


class Auth:
    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys
        self.bearer = HTTPBearer(auto_error=False, description=SCHEME_DESCRIPTION)
        self._dependencies = {scope: self._dependency(scope) for scope in SCOPES}

    def _dependency(self, needed: str) -> Callable[..., Caller]:
        keys = self.keys

        def require_scope(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(self.bearer)]) -> Caller:
            caller = keys.caller(creds.credentials) if creds is not None else None
            if caller is None:
                raise HTTPException(401, "missing or invalid API key (Authorization: Bearer <key>)",
                                    headers={"WWW-Authenticate": "Bearer"})
            if not caller.allows(needed):
                raise HTTPException(403, f"this operation needs the `{needed}` scope; this API key has "
                                         f"`{caller.scope}`")
            return caller

        return require_scope

    def require(self, scope: str) -> Callable[..., Caller]:
        """The dependency answering the caller when its key has `scope` (the same callable per scope, so
        a route that also takes the caller as a parameter checks it once)."""
        return self._dependencies[scope]

    def route(self, scope: str) -> dict[str, Any]:
        """Keyword arguments of a route decorator: the scope check and its documentation."""
        return {"dependencies": [Depends(self.require(scope))], "openapi_extra": {SCOPE_EXTENSION: scope}}
