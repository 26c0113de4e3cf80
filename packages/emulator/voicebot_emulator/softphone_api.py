"""The softphone: a page to call our numbers from the browser, its settings, and its WebSocket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from voicebot_emulator.emulator import Emulator
from voicebot_emulator.softphone_bridge import DEFAULT_FROM, SoftphoneBridge

STATIC_DIR = Path(__file__).parent / "softphone_static"  # plain HTML/CSS/ES modules: no build step
NO_CACHE = {"Cache-Control": "no-cache"}  # a page edited in the checkout shows on the next reload


def mount(app: FastAPI, emulator: Emulator) -> None:
    router = APIRouter()

    @router.get("/softphone", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=NO_CACHE)

    @router.get("/emulator/softphone/config")
    async def config() -> dict[str, Any]:
        numbers = [n.phone_number for n in emulator.incoming_numbers.matching()]
        return {"numbers": numbers, "default_to": numbers[0] if numbers else "", "default_from": DEFAULT_FROM,
                "agent_profiles": emulator.settings.softphone_agent_profiles}

    @router.websocket("/emulator/softphone/ws")
    async def softphone(ws: WebSocket) -> None:
        await SoftphoneBridge(ws, emulator).run()

    app.include_router(router)
    app.mount("/softphone/static", StaticFiles(directory=STATIC_DIR), name="softphone-static")
