"""The bot-workers in the registry and their slots (/v1/workers)."""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations at runtime.

from typing import Any

from fastapi import APIRouter

from voicebot_dialer.auth import Auth
from voicebot_dialer.errors import responses
from voicebot_dialer.response_models import WorkerPage
from voicebot_dialer.service import DialerService


def build_router(dialer: DialerService, auth: Auth) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/workers", tags=["workers"], operation_id="listWorkers", response_model=WorkerPage,
                responses=responses(), **auth.route("read"))
    def list_workers() -> dict[str, Any]:
        """The bot-workers registered now (a worker leaves the list some seconds after its last heartbeat),
        longest silent first: their capacity, the calls holding their slots, and whether they drain."""
        return {"items": [
            {"worker_id": w.worker_id, "capacity": w.capacity, "active_calls": w.active_calls,
             "free_slots": w.free_slots, "draining": w.draining, "last_heartbeat_at": w.last_heartbeat,
             "started_at": w.started_at}
            for w in dialer.workers.list_workers()]}

    return router
