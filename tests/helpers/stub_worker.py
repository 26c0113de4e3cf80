"""A socket-level stand-in for a bot-worker, for testing the gateway's relay on its own."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

from websockets.asyncio.server import serve

from helpers.servers import free_port
from voicebot_core.tickets import TICKET_HEADER, verify_ticket

TICKET_SECRET = "gateway-test-ticket-secret"


class StubWorker:
    """Stands in for a bot-worker at the socket level: checks the ticket (once only, before
    accepting), records what the gateway relays, and can push messages back or close."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.port = free_port()
        self.received: dict[str, list[str]] = {}
        self.tickets_ok: list[bool] = []
        self.nonces: list[str] = []  # of the tickets taken, in order: each one is taken once
        self.connections = {}
        self.closed: dict[str, asyncio.Event] = {}

    def _check_ticket(self, conn, request):
        """During the upgrade, as the real worker: a bad or reused ticket gets 403, no socket."""
        call_sid = request.path.split("?")[0].rsplit("/", 1)[-1]
        try:
            nonce = verify_ticket(TICKET_SECRET, request.headers.get(TICKET_HEADER), call_sid, self.worker_id).nonce
            if nonce in self.nonces:
                raise PermissionError("stream ticket already used")
        except PermissionError as exc:
            self.tickets_ok.append(False)
            return conn.respond(HTTPStatus.FORBIDDEN, f"{exc}\n")
        self.nonces.append(nonce)
        self.tickets_ok.append(True)
        return None

    async def _handler(self, conn) -> None:
        call_sid = conn.request.path.split("?")[0].rsplit("/", 1)[-1]
        self.connections[call_sid] = conn
        self.closed[call_sid] = asyncio.Event()
        try:
            async for message in conn:
                self.received.setdefault(call_sid, []).append(message)
                event = json.loads(message)
                if event["event"] == "media":  # echo audio back as the bot's reply
                    await conn.send(json.dumps({"event": "media", "streamSid": event["streamSid"],
                                                "media": {"payload": event["media"]["payload"]}}))
        finally:
            self.closed[call_sid].set()

    async def __aenter__(self) -> StubWorker:
        self._server = await serve(self._handler, "127.0.0.1", self.port, process_request=self._check_ticket)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()
