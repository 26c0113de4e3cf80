"""A stand-in for Twilio's Calls REST resource that can be slow or fail: creates, lists, fetches
and updates, each create counted, so tests see how many calls a callee would have had."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

API = "/2010-04-01/Accounts/{account_sid}"


@dataclass
class CreateAnswer:
    """How one create goes: Twilio makes the call `made_after_s` after the request arrived (None:
    never), and answers `status` after `answer_after_s` (a client that gave up never sees it)."""

    status: int = 201
    made_after_s: float | None = 0.0
    answer_after_s: float = 0.0
    retry_after: str | None = None


@dataclass
class CallsStandIn:
    url: str = ""  # its base URL once served
    creates: list[dict[str, Any]] = field(default_factory=list)  # every create that reached "Twilio"
    calls: list[dict[str, Any]] = field(default_factory=list)  # the calls "Twilio" made, oldest first
    updates: list[dict[str, Any]] = field(default_factory=list)
    create_answers: list[CreateAnswer] = field(default_factory=list)  # next creates; then plain 201s
    list_errors: list[int] = field(default_factory=list)  # statuses of the next list requests
    update_errors: list[int] = field(default_factory=list)  # statuses of the next updates (recorded, not applied)

    def make_call(self, to: str, from_: str, sid: str | None = None) -> dict[str, Any]:
        """Twilio makes a call (once per sid)."""
        made = next((c for c in self.calls if sid and c["sid"] == sid), None)
        if made is not None:
            return made
        now = format_datetime(datetime.now(UTC), usegmt=True)
        call = {"sid": sid or f"CA{uuid.uuid4().hex}", "account_sid": "AC" + "0" * 32, "to": to, "from": from_,
                "status": "queued", "direction": "outbound-api", "date_created": now, "date_updated": now,
                "answered_by": None, "duration": None}
        self.calls.append(call)
        return call

    def calls_to(self, to: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["to"] == to]


def _error(status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    codes = {429: 20429, 500: 20500, 502: 20502, 503: 20503, 504: 20504}
    return JSONResponse({"code": codes.get(status, 20001), "message": f"stand-in answered {status}",
                         "status": status}, status_code=status, headers=headers)


def create_calls_stand_in(state: CallsStandIn) -> FastAPI:
    app = FastAPI()

    @app.post(f"{API}/Calls.json")
    async def create_call(account_sid: str, request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        state.creates.append({"at": time.time(), **form})
        answer = state.create_answers.pop(0) if state.create_answers else CreateAnswer()
        sid = f"CA{uuid.uuid4().hex}"
        if answer.made_after_s is not None:
            # Made on the server's own clock, whether or not the client is still waiting.
            asyncio.get_running_loop().call_later(answer.made_after_s, state.make_call, form["To"], form["From"], sid)
        await asyncio.sleep(answer.answer_after_s)
        if answer.status >= 300:
            return _error(answer.status, {"Retry-After": answer.retry_after} if answer.retry_after else None)
        return JSONResponse(state.make_call(form["To"], form["From"], sid), status_code=answer.status)

    @app.get(f"{API}/Calls.json")
    async def list_calls(account_sid: str, request: Request) -> JSONResponse:
        if state.list_errors:
            status = state.list_errors.pop(0)
            return _error(status, {"Retry-After": "1"} if status == 429 else None)
        query = request.query_params
        calls = [c for c in reversed(state.calls)
                 if query.get("To") in (None, c["to"]) and query.get("From") in (None, c["from"])]
        return JSONResponse({"calls": calls, "page": 0, "page_size": 50, "start": 0, "end": max(len(calls) - 1, 0),
                             "uri": request.url.path, "first_page_uri": request.url.path, "next_page_uri": None,
                             "previous_page_uri": None})

    @app.get(f"{API}/Calls/{{sid}}.json")
    async def fetch_call(account_sid: str, sid: str) -> JSONResponse:
        call = next((c for c in state.calls if c["sid"] == sid), None)
        return JSONResponse(call) if call else _error(404)

    @app.post(f"{API}/Calls/{{sid}}.json")
    async def update_call(account_sid: str, sid: str, request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        state.updates.append({"sid": sid, **form})
        if state.update_errors:
            return _error(state.update_errors.pop(0))
        call = next((c for c in state.calls if c["sid"] == sid), None)
        if call is None:
            return _error(404)
        call["status"] = form.get("Status", call["status"])
        return JSONResponse(call)

    return app
