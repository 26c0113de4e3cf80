"""Keep the Celery worker running through a broker (Redis) restart.

On a lost broker connection Celery 5.7 closes the consumer's broken connection, which detaches
kombu's Redis transport from it, before reconnecting. What still runs on the old channel then (giving
back the unacknowledged messages as the channel closes, acknowledging a task that finishes meanwhile:
acks_late) asks the detached transport for its connection parameters and fails with an AttributeError
(`'NoneType' object has no attribute 'hostname'`). Celery handles connection errors there, not that
one: the worker stops (and `app.start` reports exit code 0). Raised as the connection error it is, it
is handled: the channel closes, the ack is logged as failed, the consumer reconnects. A message whose
ack or give-back failed stays in kombu's unacked set, from which a consumer restores it once its
visibility timeout has passed; the dialer's tasks are idempotent, and its dispatch leases re-dispatch
the jobs sooner.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_original_connparams = kombu_redis.Channel._connparams


def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> dict[str, Any]:
    if self.connection.client is None:
        raise RedisConnectionError("the broker connection of this channel was closed (connection lost)")
    return _original_connparams(self, asynchronous=asynchronous)


def survive_broker_loss() -> None:
    """Install the fix (idempotent); celery_app does at import, before any worker starts."""
    kombu_redis.Channel._connparams = _connparams
