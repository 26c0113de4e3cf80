"""Celery app of the dialer: `celery -A voicebot_dialer.celery_app worker -Q dialer`.

acks_late + reject_on_worker_lost: a task whose worker dies is delivered again; the tasks are
idempotent (dispatch tokens, per-job locks, callback fingerprints), so a redelivery is harmless.
Every worker also runs a small dispatcher thread that turns due jobs in the Redis schedule into
placement tasks (and due webhook retries into delivery tasks) and reconciles placements a dead
worker left behind.

Run it with `python -m voicebot_dialer.worker` (worker.py): the prefork pool's processes count
placements, retries and outcomes, and prometheus_client's multiprocess mode brings their values to
the main process's metrics server (`metrics_registry`, `_pool_process_exit`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Unpack

from celery import Celery, signals
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server
from redis.exceptions import RedisError

from voicebot_core import telemetry
from voicebot_core.dial_status import publish_retry_policy
from voicebot_core.logs import setup_logging
from voicebot_dialer.broker_loss import survive_broker_loss
from voicebot_dialer.enqueue import (
    CALL_STATUS_TASK,
    DELIVER_WEBHOOK_TASK,
    DIALER_QUEUE,
    PLACE_CALL_TASK,
    broker_transport_options,
    webhook_emitter,
)
from voicebot_dialer.placement import worker_name
from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import get_settings
from voicebot_dialer.webhook_delivery import WebhookDelivery
from voicebot_dialer.webhook_outbox import PendingDelivery, WebhookOutbox
from voicebot_dialer.webhook_schedule import RetrySchedule
from voicebot_dialer.worker_liveness import BeatThread

RECONCILE_EVERY_S = 2.0
RECLAIM_EVERY_S = 1.0
# Named once in the worker's main process, before the pool forks: its liveness beat and the holder
# of every task it receives (prefork children inherit it).
WORKER_ID = worker_name()

log = logging.getLogger(__name__)
settings = get_settings()

survive_broker_loss()  # however the worker is started (python -m voicebot_dialer.worker, celery -A ...)
app = Celery("voicebot_dialer", broker=settings.broker_url)
app.conf.update(
    broker_transport_options=broker_transport_options(settings.dialer_broker_prefix, settings.broker_sentinel_options),
    broker_connection_retry_on_startup=True,
    task_default_queue=DIALER_QUEUE,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    task_serializer="json",
    accept_content=["json"],
)
if settings.broker_sentinel_options:  # a publish during a Sentinel failover waits for the new primary
    app.conf.task_publish_retry_policy = publish_retry_policy(settings.redis_failover_retry_s)

_service: DialerService | None = None
_webhooks: WebhookDelivery | None = None
_service_lock = threading.Lock()


def service() -> DialerService:
    global _service
    with _service_lock:
        if _service is None:
            _service = DialerService(settings, emit_webhook=webhook_emitter(app))
        return _service


def webhooks() -> WebhookDelivery:
    global _webhooks
    dialer = service()
    with _service_lock:
        if _webhooks is None:
            schedule = RetrySchedule(settings.dialer_webhook_backoff_base_s, settings.dialer_webhook_backoff_cap_s,
                                     settings.dialer_webhook_retry_period_s)
            _webhooks = WebhookDelivery(WebhookOutbox(dialer.redis, dialer.keys),
                                        settings.dialer_webhook_secret.get_secret_value(), schedule)
        return _webhooks


def send_placement(job_id: str, attempt: int, token: str) -> None:
    # The dispatcher makes the dial job's trace current: its traceparent rides in the headers.
    app.send_task(PLACE_CALL_TASK, kwargs={"dial_job_id": job_id, "attempt": attempt, "token": token},
                  queue=DIALER_QUEUE, headers=telemetry.inject_context())


@app.task(name=PLACE_CALL_TASK, bind=True)
def place_call(self, dial_job_id: str, attempt: int, token: str) -> str:
    with telemetry.span("dialer.place_call", kind=SpanKind.CONSUMER, parent=telemetry.trace_carrier(self.request),
                        attrs={"dial_job.id": dial_job_id, "dial_job.attempt": attempt}) as place_span:
        result = service().place(dial_job_id, attempt, token)
        place_span.set_attribute("dial_job.result", result)
        return result


@app.task(name=CALL_STATUS_TASK, autoretry_for=(RedisError, TimeoutError), retry_backoff=True, max_retries=8)
def handle_call_status(dial_job_id: str, attempt: int, kind: str, params: dict[str, str]) -> str:
    return service().handle_callback(dial_job_id, int(attempt), kind, params)


@app.task(name=DELIVER_WEBHOOK_TASK)
def deliver_webhook(url: str, event: dict, retry: int = 0, first_at: float | None = None) -> str:
    # A failed attempt's next one waits in Redis (webhook_outbox), not in a Celery countdown.
    return webhooks().attempt(url, event, retry, first_at)


def send_webhook_retry(**delivery: Unpack[PendingDelivery]) -> None:
    app.send_task(DELIVER_WEBHOOK_TASK, kwargs=delivery, queue=DIALER_QUEUE)


class DispatchLoop(threading.Thread):
    """Moves due jobs and due webhook retries from Redis to the queue and reconciles; every worker
    runs one."""

    def __init__(self, dialer: DialerService, webhook_delivery: WebhookDelivery | None = None) -> None:
        super().__init__(name="dial-dispatcher", daemon=True)
        self._dialer = dialer
        self._webhooks = webhook_delivery
        self._stop_event = threading.Event()

    def run(self) -> None:
        last_reconcile = last_reclaim = 0.0
        interval = self._dialer.settings.dialer_dispatch_interval_s
        while not self._stop_event.wait(interval):
            try:
                now = time.monotonic()
                if now - last_reclaim > RECLAIM_EVERY_S:
                    last_reclaim = now
                    self._dialer.reclaim_from_dead_workers()
                self._dialer.promote_waiting()
                while self._dialer.dispatch_due(send_placement) > 0:
                    pass
                if self._webhooks is not None:
                    self._webhooks.queue_due(send_webhook_retry, self._dialer.settings.dialer_dispatch_lease_s)
                now = time.monotonic()
                if now - last_reconcile > RECONCILE_EVERY_S:
                    last_reconcile = now
                    self._dialer.reconcile_stuck_placements()
                    self._dialer.reconcile_silent_calls()
                    self._dialer.update_queue_gauges()
            except Exception:  # keep dispatching through Redis blips
                log.exception("dispatcher pass failed")

    def stop(self) -> None:
        self._stop_event.set()


_dispatcher: DispatchLoop | None = None
_beat: BeatThread | None = None
_traced_pid: int | None = None


def _setup_tracing() -> None:
    """Once per process that runs tasks: the threads pool's main process, or each prefork child
    (the batch exporter's thread does not survive a fork)."""
    global _traced_pid
    if _traced_pid != os.getpid():
        _traced_pid = os.getpid()
        telemetry.setup_tracing("voicebot-dialer-worker")


def multiprocess_metrics() -> bool:
    """prometheus_client's multiprocess mode: on when PROMETHEUS_MULTIPROC_DIR was set at its import."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def metrics_registry() -> CollectorRegistry:
    """What the metrics port serves: in multiprocess mode the values of every process of this
    worker (main and pool, live or exited) merged from the directory's files, else this process's."""
    if not multiprocess_metrics():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@signals.worker_init.connect
def _check_metrics_mode(sender: object = None, **_: object) -> None:
    pool = getattr(sender, "pool_cls", None)
    if "prefork" in getattr(pool, "__module__", str(pool)) and not multiprocess_metrics():
        log.warning("prefork pool without PROMETHEUS_MULTIPROC_DIR: counters of the pool processes never reach "
                    "/metrics; start the worker with `python -m voicebot_dialer.worker`")


@signals.worker_process_init.connect
def _init_pool_process(**_: object) -> None:
    _setup_tracing()


@signals.worker_process_shutdown.connect
def _pool_process_exit(pid: int | None = None, **_: object) -> None:
    """A pool process leaves: its live gauges go (its counters stay in the sums, as counters must)."""
    if multiprocess_metrics():
        multiprocess.mark_process_dead(pid or os.getpid())


@signals.task_received.connect
def _hold_received_job(request: object = None, **_: object) -> None:
    """This worker holds the job of a placement task it received (prefetched or running): if it
    dies, others see it in worker_liveness and take the job back within seconds."""
    if getattr(request, "name", None) != PLACE_CALL_TASK:
        return
    kwargs = getattr(request, "kwargs", None) or {}
    try:
        service().liveness.hold(kwargs["dial_job_id"], kwargs["token"], WORKER_ID)
    except (KeyError, RedisError) as exc:  # without a holder the job falls back to its lease
        log.warning("could not record the holder of a placement task: %r", exc)


@signals.worker_ready.connect
def _start_dispatcher(**_: object) -> None:
    global _dispatcher, _beat
    setup_logging("dialer-worker", settings.log_level, settings.log_json, settings.mask_phone_numbers)
    _setup_tracing()
    _beat = BeatThread(service().liveness, WORKER_ID)
    _beat.start()
    _dispatcher = DispatchLoop(service(), webhooks())
    _dispatcher.start()
    if settings.dialer_metrics_port:
        try:
            start_http_server(settings.dialer_metrics_port, addr=settings.dialer_metrics_host,
                              registry=metrics_registry())
        except OSError as exc:  # a second worker on the same host: its metrics stay unexported
            log.warning("metrics port %s unavailable: %s", settings.dialer_metrics_port, exc)


@signals.worker_shutdown.connect
def _stop_dispatcher(**_: object) -> None:
    if _dispatcher is not None:
        _dispatcher.stop()
    if _beat is not None:
        _beat.stop()
