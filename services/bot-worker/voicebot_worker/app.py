"""The bot-worker's FastAPI app: call streams, status callbacks, health, metrics, registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voicebot_core import metrics
from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallStore
from voicebot_core.dial_jobs import DialJobReader
from voicebot_core.logs import call_sid_var
from voicebot_core.object_store import object_store
from voicebot_core.profiles import AgentProfiles
from voicebot_core.redis_client import connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.tickets import TICKET_HEADER, TicketError, consume_ticket
from voicebot_core.twilio_protocol import FrameError, StreamStart, parse_frame, parse_start
from voicebot_core.vocabulary import CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, CLOSE_TRY_AGAIN
from voicebot_worker.call import CallSession
from voicebot_worker.call_setup import prepare_call
from voicebot_worker.prepared_phrases import prepare_worker
from voicebot_worker.settings import WorkerSettings
from voicebot_worker.turns import stats as turn_stats

log = logging.getLogger(__name__)


class WorkerState:
    """Process-wide state: live calls (slots), registry membership, draining."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.keys = RedisKeys(prefix=settings.redis_prefix)
        self.redis = connect(settings.redis_target)
        self.store = CallStore(self.redis, self.keys, settings.call_data_retention_s)
        self.media = CallMedia(object_store(settings))
        self.dial_jobs = DialJobReader(self.redis, self.keys)
        self.registry = WorkerRegistry(self.redis, self.keys, heartbeat_ttl_s=settings.worker_heartbeat_ttl_s)
        self.profiles = AgentProfiles.load(settings.agent_profiles_path, settings.transfer_sip_hosts)
        self.calls: dict[str, CallSession | None] = {}  # None while the stream is still starting
        self.draining = False
        self.registered = False
        self.no_calls = asyncio.Event()
        self.no_calls.set()
        self._heartbeat_task: asyncio.Task[None] | None = None

    @property
    def free_slots(self) -> int:
        return 0 if self.draining else max(0, self.settings.worker_capacity - len(self.calls))

    def update_gauges(self) -> None:
        if self.calls:
            self.no_calls.clear()
        else:
            self.no_calls.set()
        metrics.WORKER_CAPACITY.set(self.settings.worker_capacity)
        metrics.WORKER_FREE_SLOTS.set(self.free_slots)
        metrics.WORKER_DRAINING.set(int(self.draining))

    async def start(self) -> None:
        if self.settings.worker_preload_local_models:
            from voicebot_worker.providers.local import preload

            await asyncio.to_thread(preload, self.settings)
        # Models and the profiles' fixed phrases are ready before the worker is: its first call is a warm one.
        await prepare_worker(self.profiles, self.settings)
        settings = self.settings
        await self.registry.register(settings.worker_id, settings.worker_advertise_url, settings.worker_capacity)
        metrics.WORKER_HEARTBEAT.set_to_current_time()  # registering writes the first heartbeat
        self.registered = True
        self.update_gauges()
        self._heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeat())
        log.info("worker %s registered at %s (capacity %d)", self.settings.worker_id,
                 self.settings.worker_advertise_url, self.settings.worker_capacity)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.worker_heartbeat_interval_s)
            try:
                await self.registry.heartbeat(self.settings.worker_id)
                metrics.WORKER_HEARTBEAT.set_to_current_time()
            except LookupError:
                # Our entry expired (e.g. Redis restarted): register again and re-claim live calls.
                log.warning("registry entry expired; registering again")
                await self.registry.register(self.settings.worker_id, self.settings.worker_advertise_url,
                                             self.settings.worker_capacity)
                metrics.WORKER_HEARTBEAT.set_to_current_time()
                if self.calls:
                    await self.registry.hold(self.settings.worker_id, set(self.calls))
                if self.draining:
                    await self.registry.set_draining(self.settings.worker_id)
            except Exception:
                log.exception("registry heartbeat failed")

    async def drain(self) -> None:
        """SIGTERM: refuse new streams, let live calls finish (up to the drain timeout), deregister."""
        self.draining = True
        self.update_gauges()
        with contextlib.suppress(Exception):
            await self.registry.set_draining(self.settings.worker_id)
        log.info("draining: waiting for %d live calls", len(self.calls))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.no_calls.wait(), timeout=self.settings.worker_drain_timeout_s)
        if self.calls:
            log.warning("drain timeout: ending %d calls", len(self.calls))
            for session in [s for s in self.calls.values() if s is not None]:
                await session.shutdown("worker_shutdown")
            with contextlib.suppress(TimeoutError):  # let them store their transcripts
                await asyncio.wait_for(self.no_calls.wait(), timeout=10)
        await self.stop()

    async def stop(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
        if self.registered:
            with contextlib.suppress(Exception):
                await self.registry.deregister(self.settings.worker_id)
            self.registered = False

    async def close(self) -> None:
        await self.stop()
        await self.redis.aclose()


async def read_stream_start(websocket: WebSocket, timeout_s: float) -> StreamStart:
    """`connected` (optional) then `start`, as the gateway forwards them from Twilio."""
    async with asyncio.timeout(timeout_s):
        while True:
            frame = parse_frame(await websocket.receive_text(), started=False)
            if frame.event == "start":
                return parse_start(frame)
            if frame.event != "connected":
                raise FrameError(f"expected start, got {frame.event!r}")


def create_app(settings: WorkerSettings | None = None) -> FastAPI:
    settings = settings or WorkerSettings()
    state = WorkerState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            for session in [s for s in state.calls.values() if s is not None]:
                await session.shutdown("worker_shutdown")
            await state.close()

    app = FastAPI(title="voicebot bot-worker", lifespan=lifespan)
    app.state.worker = state

    @app.websocket("/streams/{call_sid}")
    async def stream(websocket: WebSocket, call_sid: str) -> None:
        call_sid_var.set(call_sid)
        # The ticket is checked and used up during the upgrade, before accepting: closing now
        # answers the handshake with HTTP 403, so a bad or replayed ticket never gets a socket.
        try:
            await consume_ticket(state.redis, state.keys, settings.stream_ticket_secret.get_secret_value(),
                                 websocket.headers.get(TICKET_HEADER), call_sid, settings.worker_id)
        except TicketError as exc:
            log.warning("stream refused: %s", exc)
            await websocket.close(code=CLOSE_POLICY, reason=str(exc))
            return
        await websocket.accept()
        if state.draining or len(state.calls) >= settings.worker_capacity or call_sid in state.calls:
            reason = ("worker is draining" if state.draining else
                      "call already attached" if call_sid in state.calls else "worker is full")
            log.info("stream refused: %s", reason)
            # Take the gateway's `connected`/`start` first, so its sends succeed and it sees a clean
            # 1013 from the relay (then tries another worker) rather than a send on a closed socket.
            with contextlib.suppress(Exception):
                await read_stream_start(websocket, 2.0)
            await websocket.close(code=CLOSE_TRY_AGAIN, reason=reason)
            return
        state.calls[call_sid] = None  # hold the slot before the first await
        state.update_gauges()
        try:
            await _run_call(websocket, call_sid)
        finally:
            state.calls.pop(call_sid, None)
            state.update_gauges()

    async def _run_call(websocket: WebSocket, call_sid: str) -> None:
        try:
            start = await read_stream_start(websocket, settings.worker_stream_start_timeout_s)
            if start.call_sid != call_sid:
                raise FrameError(f"start is for call {start.call_sid}, not {call_sid}")
            setup = await prepare_call(start, state.profiles, state.dial_jobs, state.store, settings)
        except (FrameError, TimeoutError, KeyError, WebSocketDisconnect) as exc:
            reason = f"bad stream start: {exc}" if not isinstance(exc, TimeoutError) else "no start frame"
            log.warning("stream closed: %s", reason)
            await state.registry.release(settings.worker_id, call_sid)
            if websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError):
                    await websocket.close(code=CLOSE_PROTOCOL_ERROR, reason=reason[:120])
            return
        session = CallSession(setup=setup, websocket=websocket, settings=settings, store=state.store,
                              registry=state.registry, media=state.media)
        state.calls[call_sid] = session
        log.info("call attached: profile=%s direction=%s", setup.profile.name, setup.direction)
        await session.run()

    @app.post("/calls/{call_sid}/status")
    async def call_status(call_sid: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        status = str(body.get("CallStatus", "")) if isinstance(body, dict) else ""
        session = state.calls.get(call_sid)
        ended = await session.on_status(status) if session is not None else False
        return {"call_sid": call_sid, "status": status, "live": session is not None, "ended": ended}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "worker_id": settings.worker_id, "smart_turn": dict(turn_stats)}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = state.registered and not state.draining
        body = {"ready": ready, "draining": state.draining, "registered": state.registered,
                "calls": len(state.calls), "capacity": settings.worker_capacity}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        state.update_gauges()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
