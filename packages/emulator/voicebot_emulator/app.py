"""The emulator's FastAPI app: Twilio REST subset + control API + softphone + health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from voicebot_emulator import control_api, rest_api, softphone_api
from voicebot_emulator.emulator import Emulator
from voicebot_emulator.settings import EmulatorSettings


def create_app(settings: EmulatorSettings | None = None) -> FastAPI:
    settings = settings or EmulatorSettings()
    emulator = Emulator(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.emulator_recordings_dir.mkdir(parents=True, exist_ok=True)
        yield
        await emulator.aclose()

    app = FastAPI(title="voicebot Twilio emulator", lifespan=lifespan)
    app.state.emulator = emulator

    @app.exception_handler(rest_api.TwilioError)
    async def twilio_error(_: Request, exc: rest_api.TwilioError) -> Response:
        return exc.response()

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        active = sum(1 for c in emulator.call_log.calls.values() if not c.terminal)
        return {"status": "ok", "calls": len(emulator.call_log.calls), "active_calls": active}

    app.include_router(rest_api.build_router(emulator))
    app.include_router(control_api.build_router(emulator))
    softphone_api.mount(app, emulator)
    return app
