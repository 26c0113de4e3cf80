"""The dialer's Celery worker app with VOICEBOT_REDIS_SENTINELS: a sentinel:// broker, its master name
and Sentinel password merged into the transport options the dialer always sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.servers import PYTHONPATH, ROOT
from voicebot_core.dial_status import publish_retry_policy
from voicebot_core.settings import CommonSettings

PRINT_CONF = ("import json, voicebot_dialer.celery_app as c; print(json.dumps([c.app.conf.broker_url, "
              "c.app.conf.broker_transport_options, c.app.conf.task_publish_retry_policy]))")


def celery_conf(**env: str) -> tuple[str, dict, dict]:
    result = subprocess.run([sys.executable, "-c", PRINT_CONF], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": PYTHONPATH, **env}, check=True)
    url, options, publish_retry = json.loads(result.stdout.strip().splitlines()[-1])
    return url, options, publish_retry


def test_worker_broker_goes_through_the_sentinels() -> None:
    url, options, publish_retry = celery_conf(VOICEBOT_REDIS_URL="redis://:pw@unused/1",
                               VOICEBOT_REDIS_SENTINELS="s-0:26379,s-1:26379",
                                              VOICEBOT_REDIS_SENTINEL_MASTER="main",
                                              VOICEBOT_REDIS_SENTINEL_PASSWORD="spw",
                                              VOICEBOT_DIALER_BROKER_PREFIX="p:celery:")
    assert url == "sentinel://:pw@s-0:26379/1;sentinel://:pw@s-1:26379/1"
    assert options == {"visibility_timeout": 300, "global_keyprefix": "p:celery:", "master_name": "main",
                       "sentinel_kwargs": {"password": "spw"}}
    # the worker's own publishes (placement tasks, webhooks) keep trying through a failover
    assert publish_retry == publish_retry_policy(CommonSettings.model_fields["redis_failover_retry_s"].default)


def test_worker_broker_without_sentinels_is_unchanged() -> None:
    url, options, publish_retry = celery_conf(VOICEBOT_REDIS_URL="redis://r:6379/1",
                                              VOICEBOT_DIALER_BROKER_PREFIX="p:celery:")
    assert url == "redis://r:6379/1"
    assert options == {"visibility_timeout": 300, "global_keyprefix": "p:celery:"}
    assert publish_retry["max_retries"] == 3  # Celery's own default
