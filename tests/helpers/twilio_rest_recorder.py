"""A stand-in for Twilio's Calls REST resource that records every update the worker makes."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_rest_recorder(updates: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json")
    async def update_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
        form = dict(await request.form())
        updates.append({"at": time.monotonic(), "account_sid": account_sid, "call_sid": call_sid, **form,
                        "authorized": request.headers.get("authorization", "").startswith("Basic ")})
        status = "completed" if form.get("Status") == "completed" else "in-progress"
        return JSONResponse({"sid": call_sid, "account_sid": account_sid, "status": status})

    return app
