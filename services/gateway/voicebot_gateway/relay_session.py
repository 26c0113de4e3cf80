"""The call of one byte-level relayed stream: attaching workers to Twilio's socket, and the ticks.

`RelaySession` is the `StreamCall` of `media_relay.StreamRelayProtocol`: it connects
`WorkerConnection`s, attaches each to Twilio's socket until one side ends (a worker lost midway,
or one that closes with 1013, is replaced; Twilio's frames wait meanwhile), and on a tick (a third
of the worker liveness timeout) checks that the worker is alive, flushes the frame counters once
a second and runs Twilio's keepalive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from voicebot_core.twilio_protocol import StreamStart
from voicebot_core.vocabulary import CLOSE_NORMAL
from voicebot_gateway.frame_relay import FAILED, TWILIO_DONE, WORKER_LOST, WORKER_REFUSED, RelayError
from voicebot_gateway.state import GatewayState
from voicebot_gateway.stream_calls import RelayEnd, StreamCall
from voicebot_gateway.worker_link import WorkerConnection

if TYPE_CHECKING:
    from voicebot_gateway.media_relay import StreamRelayProtocol

log = logging.getLogger(__name__)

LIVENESS_TICKS = 3  # ticks per worker liveness timeout: silent at a tick, pinged; silent at the next, lost
FLUSH_S = 1.0  # frame counters to Prometheus
TWILIO_PING_S = 20.0  # Twilio's side, as uvicorn's ws_ping_interval/timeout 20 s
WORKER_ENDS = {WORKER_LOST: RelayEnd.LOST, WORKER_REFUSED: RelayEnd.REFUSED}  # any other end: DONE


class RelaySession(StreamCall[WorkerConnection]):
    refused = (OSError, TimeoutError, RelayError)
    gone = (RelayError,)

    def __init__(self, state: GatewayState, twilio: StreamRelayProtocol) -> None:
        super().__init__(state, twilio.call_sid)
        self.twilio = twilio
        self.loop = twilio.loop
        self.worker: WorkerConnection | None = None
        self.relay_end: asyncio.Future[str] = self.loop.create_future()  # how the current relay ended
        self.ticks = 0
        self.timer: asyncio.TimerHandle | None = None
        # a worker that stops answering without closing (hung, frozen, network cut) is heard of only by
        # its silence: the tick is short enough to move its call within the liveness timeout
        self.tick_s = state.settings.gateway_worker_liveness_timeout_s / LIVENESS_TICKS
        self.start_grace_s = state.settings.gateway_worker_start_grace_s
        self.flush_ticks = max(1, round(FLUSH_S / self.tick_s))
        self.twilio_ping_ticks = max(1, round(TWILIO_PING_S / self.tick_s))

    def start(self, tasks: set[asyncio.Task]) -> None:
        """Run the call as a task uvicorn's shutdown knows about, and the ticks."""
        task = self.loop.create_task(self.run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        self.timer = self.loop.call_later(self.tick_s, self._tick)

    # --- StreamCall -----------------------------------------------------------------------------
    async def read_start(self) -> StreamStart:
        return await asyncio.shield(self.twilio.started)

    async def connect(self, address: str, ticket: str) -> WorkerConnection:
        return await asyncio.wait_for(WorkerConnection.open(self.loop, address, self.call_sid, ticket),
                                      self.state.settings.gateway_worker_connect_timeout_s)

    async def relay(self, worker: WorkerConnection) -> RelayEnd:
        """Attach the worker, send it connected, start and what came meanwhile; wait for the end."""
        twilio = self.twilio
        if self.relay_end.done():  # Twilio left (or broke a frame) while we were attaching
            if self.relay_end.result() == FAILED:
                raise twilio.error
            if twilio.pending:  # what came before the stop
                worker.transport.write(twilio.held())
            worker.close(CLOSE_NORMAL)
            return RelayEnd.DONE
        self.worker = worker
        relay_end = self.relay_end
        # what the worker sent meanwhile goes now, and may end the relay at once (a 1013 close): then
        # Twilio's held frames stay held for the next worker
        worker.attach(self, twilio.transport)
        if not relay_end.done():
            twilio.attach(worker.transport)
        how = await asyncio.shield(relay_end)
        if how == FAILED:
            raise twilio.error
        if how == TWILIO_DONE:
            worker.close(CLOSE_NORMAL)
        if how == WORKER_LOST:
            log.warning("worker stream broke: %s", worker.lost_reason)
        return WORKER_ENDS.get(how, RelayEnd.DONE)

    async def detach(self, worker: WorkerConnection) -> None:
        self._detach(worker)

    async def close(self, code: int, reason: str = "") -> None:
        self.twilio.close(code, reason)

    def ended(self) -> None:
        if self.worker is not None:
            self._detach(self.worker)
        if self.timer is not None:
            self.timer.cancel()
        self.twilio.flush_counter()

    # --- the sockets' ends ------------------------------------------------------------------------
    def _detach(self, worker: WorkerConnection) -> None:
        worker.flush_counter()
        if self.worker is worker:
            self.worker = None
            self.twilio.detach()
        worker.close(CLOSE_NORMAL)

    def end(self, how: str) -> None:
        """Twilio's side ended (stop, close, hang-up, a malformed frame)."""
        if not self.relay_end.done():
            self.relay_end.set_result(how)

    def worker_ended(self, worker: WorkerConnection, how: str) -> None:
        """The worker's side ended (called by WorkerConnection)."""
        if worker is not self.worker or self.relay_end.done():
            return
        self.twilio.detach()
        self.relay_end.set_result(how)
        if how in WORKER_ENDS:  # what Twilio does from now on concerns the next worker
            self.relay_end = self.loop.create_future()

    # --- worker liveness, metrics and Twilio's keepalive, on ticks ---------------------------------
    def _tick(self) -> None:
        twilio = self.twilio
        worker = self.worker
        self.ticks += 1
        if self.ticks % self.flush_ticks == 0 or twilio.closed:
            twilio.flush_counter()
            if worker is not None:
                worker.flush_counter()
        if twilio.closed:
            return
        if worker is not None:
            worker.keepalive()  # silent since the last tick: ping; still silent at the next: lost
        if self.ticks % self.twilio_ping_ticks == 0:
            twilio.keepalive()
        self.timer = self.loop.call_later(self.tick_s, self._tick)
