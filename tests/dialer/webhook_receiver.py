"""A real event webhook receiver for the dialer tests: FastAPI on uvicorn in a thread, on a port of
its own that it can leave (connection refused) and come back to. It records every POST with the
status it answered; `answer` decides that status (and headers) per path and event."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response

from helpers.servers import free_port, uvicorn_thread
from voicebot_dialer.event_webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER

Answer = Callable[[str, dict[str, Any]], tuple[int, dict[str, str]]]


@dataclass(frozen=True)
class Post:
    path: str
    body: bytes
    event_id_header: str
    signature: str
    status: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.answer: Answer = lambda path, event: (200, {})
        self._posts: list[Post] = []
        self._lock = threading.Lock()
        self._running: contextlib.ExitStack | None = None
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> Response:
            body = await request.body()
            status, headers = self.answer(path, json.loads(body))
            with self._lock:
                self._posts.append(Post(path, body, request.headers.get(EVENT_ID_HEADER, ""),
                                        request.headers.get(SIGNATURE_HEADER, ""), status, time.time()))
            return Response(status_code=status, headers=headers)

        self._app = app

    def start(self) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(uvicorn_thread(self._app, self.port))
        self._running = stack

    def stop(self) -> None:
        """Down: connections to the port are refused until `start`."""
        if self._running is not None:
            self._running.close()
            self._running = None

    def posts(self, path: str | None = None) -> list[Post]:
        with self._lock:
            return [p for p in self._posts if path is None or p.path == path]

    def delivered(self) -> dict[str, Post]:
        """Event id -> the first POST of it answered 2xx."""
        out: dict[str, Post] = {}
        for post in self.posts():
            if post.status // 100 == 2:
                out.setdefault(post.event["event_id"], post)
        return out
