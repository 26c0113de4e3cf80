"""Hand a Twilio status or AMD callback for a dial job to the dialer's Celery workers.

The gateway is Twilio's one public entry point; it checks the signature, then enqueues this
task on the dialer's queue (a durable Redis list), so callbacks survive a dialer restart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from celery import Celery

from voicebot_core.settings import CommonSettings

HANDLE_CALL_STATUS_TASK = "voicebot_dialer.handle_call_status"
DIALER_QUEUE = "dialer"
PUBLISH_RETRY_STEP_S = 0.5


def broker_transport_options(key_prefix: str = "", sentinel: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`sentinel`: CommonSettings.broker_sentinel_options (master_name, ...) for a `sentinel://` broker."""
    # Tasks wait for rate tokens for a few seconds at most; a dead worker's unacked message
    # comes back after this. The dialer's own leases recover jobs sooner.
    options: dict[str, Any] = {"visibility_timeout": 300}
    if key_prefix:  # several deployments (or test runs) sharing one Redis keep apart
        options["global_keyprefix"] = key_prefix
    options.update(sentinel or {})
    return options


def publish_retry_policy(retry_s: float) -> dict[str, float]:
    """Celery's task_publish_retry_policy that keeps a publish trying for `retry_s` (a failover)."""
    return {"max_retries": math.ceil(retry_s / PUBLISH_RETRY_STEP_S), "interval_start": 0,
            "interval_step": PUBLISH_RETRY_STEP_S, "interval_max": PUBLISH_RETRY_STEP_S}


@lru_cache(maxsize=8)
def producer_app(broker_url: str, key_prefix: str = "", sentinel_master: str = "",
                 sentinel_password: str = "", publish_retry_s: float = 0) -> Celery:
    """A Celery producer for the dialer's broker, with its key prefix (and, for a `sentinel://`
    broker, the Sentinels' master name and password). Services: `producer_for(settings)`.
    `publish_retry_s`: keep retrying a publish that fails on the connection this long (a
    failover); Celery's default gives up after ~0.6 s, and a status callback is not sent twice."""
    app = Celery("voicebot-dialer-producer", broker=broker_url, set_as_current=False)
    if publish_retry_s > 0:
        app.conf.task_publish_retry_policy = publish_retry_policy(publish_retry_s)
    sentinel: dict[str, Any] = {}
    if sentinel_master:
        sentinel["master_name"] = sentinel_master
    if sentinel_password:
        sentinel["sentinel_kwargs"] = {"password": sentinel_password}
    app.conf.broker_transport_options = broker_transport_options(key_prefix, sentinel)
    return app


def producer_for(settings: CommonSettings) -> Celery:
    """The producer of a service's settings: their broker URL, key prefix and Sentinel options."""
    sentinel = settings.broker_sentinel_options
    return producer_app(settings.broker_url, settings.dialer_broker_prefix, sentinel.get("master_name", ""),
                        sentinel.get("sentinel_kwargs", {}).get("password", ""),
                        settings.redis_failover_retry_s if sentinel else 0)


def enqueue_call_status(
    broker: str | Celery,
    dial_job_id: str,
    attempt: int,
    kind: Literal["status", "amd"],
    params: dict[str, Any],
) -> None:
    app = producer_app(broker) if isinstance(broker, str) else broker
    app.send_task(
        HANDLE_CALL_STATUS_TASK,
        kwargs={"dial_job_id": dial_job_id, "attempt": attempt, "kind": kind, "params": params},
        queue=DIALER_QUEUE,
    )
