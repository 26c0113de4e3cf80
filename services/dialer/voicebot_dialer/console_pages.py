"""The operators' console (`/console/`): static pages over the public REST API, served by the dialer API.

The pages hold no data and no key: each request they make carries the operator's API key, checked by
the same routes and scopes as any other client. The Content-Security-Policy keeps them to this origin
(no CDN, no inline script), so a transcript line can never run as code.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_DIR = Path(__file__).parent / "console"
CONSOLE_PATH = "/console"
CONSOLE_HEADERS = {
    b"content-security-policy": b"default-src 'self'; media-src 'self' blob:; object-src 'none'; "
                                b"base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",
}


class _WithHeaders:
    """Adds CONSOLE_HEADERS to every response of the wrapped static app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *CONSOLE_HEADERS.items()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_console(app: FastAPI) -> None:
    @app.get(CONSOLE_PATH, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PATH}/")

    app.mount(CONSOLE_PATH, _WithHeaders(StaticFiles(directory=CONSOLE_DIR, html=True)), name="console")
