"""A socket-level stand-in for a bot-worker, for testing the gateway's relay on its own."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.server import serve

from helpers.servers import free_port
from voicebot_core.tickets import TICKET_HEADER, verify_ticket

TICKET_SECRET = "gateway-test-ticket-secret"


class StubWorker:
    """Stands in for a bot-worker at the socket level: checks the ticket, records what the
    gateway relays, and can push messages back or close."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.port = free_port()
        self.received: dict[str, list[str]] = {}
        self.tickets_ok: list[bool] = []
        self.connections = {}
        self.closed: dict[str, asyncio.Event] = {}

    async def _handler(self, conn) -> None:
        call_sid = conn.request.path.split("?")[0].rsplit("/", 1)[-1]
        ticket = conn.request.headers.get(TICKET_HEADER)
        try:
            verify_ticket(TICKET_SECRET, ticket, call_sid, self.worker_id)
            self.tickets_ok.append(True)
        except PermissionError:
            self.tickets_ok.append(False)
            await conn.close(1008, "bad ticket")
            return
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
        self._server = await serve(self._handler, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()
