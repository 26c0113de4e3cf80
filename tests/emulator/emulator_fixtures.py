"""Emulator test fixtures: a running emulator, the twilio SDK pointed at it, and a small
'our side' server that checks every request's X-Twilio-Signature the way the gateway does."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response

from helpers.servers import uvicorn_thread
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker, SignatureError, public_url
from voicebot_core.twilio_rest import make_client
from voicebot_emulator.app import create_app
from voicebot_emulator.settings import EmulatorSettings

ACCOUNT_SID = "AC" + "1234abcd" * 4
AUTH_TOKEN = "test-emulator-token"


@dataclass
class Emulator:
    url: str
    settings: EmulatorSettings

    def sdk(self, token: str = AUTH_TOKEN):
        return make_client(ACCOUNT_SID, token, base_url=self.url)

    def configure(self, numbers: dict[str, dict[str, Any]]) -> None:
        httpx.post(f"{self.url}/emulator/numbers", json=numbers, timeout=5).raise_for_status()

    def place_inbound(self, **body: Any) -> str:
        response = httpx.post(f"{self.url}/emulator/calls", json=body, timeout=5)
        response.raise_for_status()
        return response.json()["call_sid"]

    def wait(self, sid: str, timeout: float = 20) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/emulator/calls/{sid}/wait", params={"timeout": timeout},
                             timeout=timeout + 5)
        assert response.status_code == 200, f"call {sid} did not end: {response.text[:2000]}"
        return response.json()

    def report(self, sid: str) -> dict[str, Any]:
        return httpx.get(f"{self.url}/emulator/calls/{sid}", timeout=5).json()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    settings = EmulatorSettings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        emulator_ring_seconds=0.2,
        emulator_no_answer_seconds=0.5,
        emulator_recordings_dir=tmp_path_factory.mktemp("emulator-audio"),
        emulator_script_linger_seconds=3.0,
    )
    with uvicorn_thread(create_app(settings)) as url:
        yield Emulator(url=url, settings=settings)


@dataclass
class Received:
    """One request or stream message our side got, with its arrival time and signature verdict."""

    t: float
    kind: str
    data: dict[str, Any]
    signature_ok: bool = True


StreamBehaviour = Callable[[WebSocket, "BotServer"], Awaitable[None]]


@dataclass
class BotServer:
    """Plays the gateway: voice webhook, status/AMD callbacks and the Media Stream WebSocket."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    twiml_after_stream: str = ""
    stream_parameters: dict[str, str] = field(default_factory=lambda: {"direction": "inbound"})
    behaviour: StreamBehaviour | None = None
    stream_done: threading.Event = field(default_factory=threading.Event)
    notes: dict[str, Any] = field(default_factory=dict)  # what a behaviour measured

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/stream"

    def stream_twiml(self) -> str:
        params = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in self.stream_parameters.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{self.ws_url}">'
                f"{params}</Stream></Connect>{self.twiml_after_stream}</Response>")

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    def messages(self, event: str | None = None) -> list[dict[str, Any]]:
        return [r.data for r in self.received if r.kind == "ws" and (event is None or r.data["event"] == event)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out waiting on the bot server"
            time.sleep(0.02)

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> float:
        """Inside a stream behaviour: poll until `predicate()`; returns the monotonic time it held."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out inside the stream behaviour"
            await asyncio.sleep(0.002)
        return time.monotonic()


def _bot_app(bot: BotServer, auth_token: str = AUTH_TOKEN) -> FastAPI:
    checker = SignatureChecker(auth_token)
    app = FastAPI()

    async def signed_form(request: Request, kind: str) -> Received:
        form = {k: str(v) for k, v in (await request.form()).items()}
        url = public_url(request_url=str(request.url), headers=request.headers, public_base_url=None)
        try:
            checker.check(url, form, request.headers.get(SIGNATURE_HEADER))
            ok = True
        except SignatureError:
            ok = False
        entry = Received(time.monotonic(), kind, form, ok)
        bot.received.append(entry)
        return entry

    @app.post("/voice")
    async def voice(request: Request) -> Response:
        entry = await signed_form(request, "voice")
        if not entry.signature_ok:
            return PlainTextResponse("bad signature", status_code=403)
        return Response(bot.stream_twiml(), media_type="application/xml")

    @app.post("/status")
    async def status(request: Request) -> Response:
        await signed_form(request, "status")
        return Response(status_code=204)

    @app.post("/amd")
    async def amd(request: Request) -> Response:
        await signed_form(request, "amd")
        return Response(status_code=204)

    @app.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        url = public_url(request_url=str(ws.url), headers=ws.headers, public_base_url=None, websocket=True)
        try:
            checker.check(url, {}, ws.headers.get(SIGNATURE_HEADER))
        except SignatureError:
            bot.received.append(Received(time.monotonic(), "ws-rejected", {"url": url}, False))
            await ws.close(code=1008)
            return
        await ws.accept()
        bot.received.append(Received(time.monotonic(), "ws-open", {"url": url}))
        reader = asyncio.create_task(_read(ws, bot))
        try:
            if bot.behaviour is not None:
                await bot.behaviour(ws, bot)
                reader.cancel()
                await ws.close(code=1000)
            else:
                await reader
        finally:
            reader.cancel()
            bot.stream_done.set()

    return app


async def _read(ws: WebSocket, bot: BotServer) -> None:
    try:
        while True:
            text = await ws.receive_text()
            bot.received.append(Received(time.monotonic(), "ws", json.loads(text)))
    except (WebSocketDisconnect, RuntimeError):
        bot.received.append(Received(time.monotonic(), "ws-closed", {}))


@pytest.fixture
def bot() -> Iterator[BotServer]:
    server = BotServer()
    with uvicorn_thread(_bot_app(server)) as url:
        server.url = url
        yield server


@pytest.fixture
def other_account_bot() -> Iterator[BotServer]:
    """Our side configured with another account's token: every signature must fail its check."""
    server = BotServer()
    with uvicorn_thread(_bot_app(server, auth_token="another-accounts-token")) as url:
        server.url = url
        yield server


def heard_wav_path(report: dict[str, Any]) -> Path:
    assert report["heard_wav"], report
    return Path(report["heard_wav"])
