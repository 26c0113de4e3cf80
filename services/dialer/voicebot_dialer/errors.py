"""The one error body of the dialer API (every 4xx and 5xx), the handlers that produce it, and
the per-route `responses` that document it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from voicebot_dialer.jobs import InvalidRequest

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str = Field(description="The input at fault: `body.to`, `query.limit`, `contacts.row3`, `campaign`, ...")
    message: str = Field(description="What is wrong with it and how to write it.")


class Error(BaseModel):
    """Every error answer (4xx and 5xx)."""

    error: str = Field(description="What went wrong, for people.")
    detail: list[FieldError] = Field(default_factory=list,
                                     description="One entry per invalid input (422); empty otherwise.")


DESCRIPTIONS = {
    400: "The body could not be parsed (not UTF-8 JSON, or broken multipart).",
    401: "Missing or unknown API key (`Authorization: Bearer <key>`).",
    403: "The API key's scope does not include the one this operation needs (`error` names both).",
    404: "No such resource.",
    409: "Conflicts with the resource's state (an Idempotency-Key reused with another body, "
         "resuming a canceled campaign, hanging up a call that has ended).",
    413: "Request body larger than the deployment's limit (`DIALER_MAX_REQUEST_BYTES`).",
    422: "Invalid input: `detail` names each invalid field. Nothing is stored.",
    500: "Unexpected server error.",
    502: "Twilio refused the request or could not be reached (`error` says which); nothing changed.",
    503: "Redis (the dialer's store) is unreachable; retry later. Nothing is stored.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route documents: `codes` plus 401, 422, 500 and 503, which every route has
    (routes with a body add 400 and 413)."""
    return {code: {"model": Error, "description": DESCRIPTIONS[code]}
            for code in sorted({401, 422, 500, 503, *codes})}


def error_response(status: int, message: str, detail: Iterable[dict[str, str]] = (),
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(Error(error=message, detail=[FieldError(**d) for d in detail]).model_dump(),
                        status_code=status, headers=headers)


def unprocessable(detail: Iterable[dict[str, str]]) -> JSONResponse:
    return error_response(422, "invalid request", detail)


def validation_errors(exc: ValidationError | RequestValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]


def _allow_header(app: FastAPI, path: str) -> dict[str, str]:
    """Every method the path has: Starlette's 405 names only those of the first route matching it."""
    paths = app.openapi()["paths"]
    template = path if path in paths else next(
        (t for t in paths if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", t), path)), None)
    if template is None:
        return {}
    return {"Allow": ", ".join(sorted(method.upper() for method in paths[template]))}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return unprocessable(validation_errors(exc))

    @app.exception_handler(InvalidRequest)
    async def _invalid_name(_: Request, exc: InvalidRequest) -> JSONResponse:
        return unprocessable([{"field": getattr(exc, "field", "body"), "message": str(exc)}])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400 (unparseable body), 401, 403, 404, 405, 409 from routes and from Starlette's router.
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), **_allow_header(app, request.url.path)}
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def _store_down(_: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("redis error answering a request: %r", exc)
        return error_response(503, "the dialer's store (Redis) is unavailable; retry later",
                              headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal error")
