"""The dialer's parts wired together once, for the Celery tasks and the REST routes.

Stores own Redis (`JobStore`, `CampaignStore`, `DoNotCallList`, `PlacementQueues`,
`CapacityGate`); `Lifecycle` names every state change; `Dispatcher`, `Placement`, `Callbacks`,
`Cancellation` and `Reconciler` do the work. Nothing here touches Redis or Twilio itself.
"""

from __future__ import annotations

from typing import Any

from twilio.rest import Client

from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallEventLog, CallRecordReader
from voicebot_core.object_store import object_store
from voicebot_core.redis_client import ReplicaAck, connect_sync
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistryReader
from voicebot_dialer.callbacks import Callbacks
from voicebot_dialer.campaign_store import CampaignStore
from voicebot_dialer.cancellation import Cancellation
from voicebot_dialer.capacity import CapacityGate
from voicebot_dialer.dispatch import Dispatcher, SendPlacement
from voicebot_dialer.do_not_call import DoNotCallList
from voicebot_dialer.job_store import JobStore
from voicebot_dialer.lifecycle import Lifecycle, WebhookEmitter
from voicebot_dialer.parts import DialerParts
from voicebot_dialer.placement import Placement
from voicebot_dialer.placement_queues import PlacementQueues
from voicebot_dialer.ratelimit import RateLimiter
from voicebot_dialer.reconcile import Reconciler
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.twilio_calls import TwilioCalls
from voicebot_dialer.worker_liveness import WorkerLiveness


class DialerService:
    def __init__(self, settings: DialerSettings, emit_webhook: WebhookEmitter | None = None,
                 twilio_client: Client | None = None) -> None:
        self.settings = settings
        self.keys = RedisKeys(prefix=settings.redis_prefix)
        self.redis = connect_sync(settings.redis_target)
        # stores
        self.store = JobStore(self.redis, self.keys, ReplicaAck(self.redis, settings.redis_replica_ack_ms))
        self.campaigns = CampaignStore(self.redis, self.keys, self.store)
        self.do_not_call = DoNotCallList(self.redis, self.keys)
        self.queues = PlacementQueues(self.redis, self.keys)
        self.capacity = CapacityGate(self.redis, self.keys, settings.dialer_require_capacity, settings.stale_call_s)
        self.call_records = CallRecordReader(self.redis, self.keys)
        self.call_events = CallEventLog(self.redis, self.keys, settings.call_data_retention_s)  # hang-up requests
        self.workers = WorkerRegistryReader(self.redis, self.keys)
        self.media = CallMedia(object_store(settings))  # recordings and transcripts
        # work
        self.calls = TwilioCalls(settings, twilio_client)
        self.lifecycle = Lifecycle(self.store, self.queues, self.capacity, emit_webhook)
        self.liveness = WorkerLiveness(self.redis, self.keys, settings.dialer_worker_liveness_s)
        parts = DialerParts(settings, self.store, self.campaigns, self.do_not_call, self.queues, self.capacity,
                            self.lifecycle, self.calls, self.liveness)
        self.dispatcher = Dispatcher(parts)
        self.placement = Placement(parts, RateLimiter(self.redis, self.keys, settings.dialer_rate_window_s))
        self.callbacks = Callbacks(parts)
        self.cancellation = Cancellation(parts)
        self.reconciler = Reconciler(parts, self.callbacks)

    @property
    def twilio(self) -> Client:
        return self.calls.client

    # Celery tasks and the dispatch loop
    def dispatch_due(self, send_placement: SendPlacement, batch: int = 100) -> int:
        return self.dispatcher.dispatch_due(send_placement, batch)

    def promote_waiting(self) -> int:
        return self.dispatcher.promote_waiting()

    def update_queue_gauges(self) -> None:
        self.dispatcher.update_queue_gauges()

    def place(self, job_id: str, attempt: int, token: str) -> str:
        return self.placement.place(job_id, attempt, token)

    def handle_callback(self, job_id: str, attempt: int, kind: str, params: dict[str, str]) -> str:
        return self.callbacks.handle(job_id, attempt, kind, params)

    def reconcile_stuck_placements(self) -> int:
        return self.reconciler.reconcile_stuck_placements()

    def reconcile_silent_calls(self, batch: int = 20) -> int:
        return self.reconciler.reconcile_silent_calls(batch)

    def reclaim_from_dead_workers(self) -> int:
        return self.reconciler.reclaim_from_dead_workers()

    # routes
    def cancel(self, job_id: str) -> dict[str, Any] | None:
        return self.cancellation.cancel(job_id)

    def cancel_campaign(self, campaign_id: str) -> None:
        self.cancellation.cancel_campaign(campaign_id)

