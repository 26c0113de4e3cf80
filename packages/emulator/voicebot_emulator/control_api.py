"""The emulator's own API: place inbound calls, configure numbers, read call reports and audio."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from voicebot_core import audio
from voicebot_emulator import inbound_calls
from voicebot_emulator.create_faults import CreateFault
from voicebot_emulator.emulator import DEFAULT_INBOUND_SCRIPT, Emulator
from voicebot_emulator.inbound_calls import InvalidNumber, check_numbers
from voicebot_emulator.model import Call
from voicebot_simulation.caller_script import ScriptError
from voicebot_simulation.caller_script import load as load_script

ANSWERS = frozenset({"human", "busy", "no-answer", "voicemail", "fail"})


class InboundCall(BaseModel):
    from_: str = Field(alias="from")
    to: str
    script: str | dict[str, Any] = DEFAULT_INBOUND_SCRIPT
    voice_url: str | None = None
    status_callback: str | None = None

    model_config = {"populate_by_name": True}


def build_router(emulator: Emulator) -> APIRouter:
    router = APIRouter(prefix="/emulator")

    def find(sid: str) -> Call:
        call = emulator.call_log.get(sid)
        if call is None:
            raise HTTPException(404, f"no call {sid}")
        return call

    @router.post("/calls")
    async def place_inbound_call(body: InboundCall) -> dict[str, str]:
        try:
            check_numbers(body.from_, body.to)
        except InvalidNumber as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            script = load_script(body.script)
        except (ScriptError, OSError) as exc:
            raise HTTPException(400, f"caller script: {exc}") from None
        runner = inbound_calls.place_inbound_call(emulator, from_=body.from_, to=body.to, script=script,
                                                  voice_url=body.voice_url, status_callback=body.status_callback)
        return {"call_sid": runner.call.sid}

    @router.get("/calls")
    async def list_reports() -> list[dict[str, Any]]:
        return [{"call_sid": c.sid, "status": c.status, "direction": c.direction, "from": c.from_, "to": c.to}
                for c in emulator.call_log.newest_first()]

    def report_of(call: Call) -> dict[str, Any]:
        body = call.report()
        body["heard_wav_url"] = emulator.settings.emulator_public_base_url.rstrip("/") + body["heard_wav_url"]
        return body

    @router.get("/calls/{sid}")
    async def report(sid: str) -> dict[str, Any]:
        return report_of(find(sid))

    @router.get("/calls/{sid}/wait")
    async def wait(sid: str, status: str = "completed", timeout: float = 30.0) -> Response:
        """Long-poll until the call is over (any terminal status) or `timeout` seconds pass."""
        call = find(sid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.finished.wait(), timeout=min(timeout, 600.0))
        body = report_of(call)
        body["reached"] = call.finished.is_set() and (status in ("", "any", "terminal") or call.status == status)
        return JSONResponse(body, status_code=200 if call.finished.is_set() else 408)

    @router.get("/calls/{sid}/heard.wav")
    async def heard_wav(sid: str) -> Response:
        call = find(sid)
        if call.heard_wav:
            return FileResponse(call.heard_wav, media_type="audio/x-wav")
        runner = emulator.runners.get(sid)
        if runner is None or runner.call_audio is None:
            raise HTTPException(404, "the call has no audio (it was never answered)")
        path = emulator.settings.emulator_recordings_dir / f"{sid}-heard-partial.wav"
        audio.write_wav(path, runner.call_audio.render("heard"), audio.TELEPHONY_RATE)
        return FileResponse(path, media_type="audio/x-wav")

    @router.get("/numbers")
    async def numbers() -> dict[str, dict[str, Any]]:
        return emulator.numbers

    @router.post("/numbers")
    async def configure_numbers(body: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for number, behaviour in body.items():
            if behaviour.get("answer", "human") not in ANSWERS:
                raise HTTPException(400, f"{number}: answer must be one of {sorted(ANSWERS)}")
            if behaviour.get("script") is not None:
                try:
                    load_script(behaviour["script"])
                except (ScriptError, OSError) as exc:
                    raise HTTPException(400, f"{number}: caller script: {exc}") from None
        emulator.numbers.update(body)
        return emulator.numbers

    @router.delete("/numbers")
    async def reset_numbers() -> dict[str, dict[str, Any]]:
        emulator.numbers.clear()
        return emulator.numbers

    @router.post("/create-faults")
    async def plan_create_faults(body: list[CreateFault]) -> list[CreateFault]:
        """Answers for the next calls.create requests, one each in order, after those already planned."""
        emulator.create_faults.add(body)
        return emulator.create_faults.pending()

    @router.get("/create-faults")
    async def pending_create_faults() -> list[CreateFault]:
        return emulator.create_faults.pending()

    @router.delete("/create-faults")
    async def clear_create_faults() -> list[CreateFault]:
        emulator.create_faults.clear()
        return emulator.create_faults.pending()

    return router
