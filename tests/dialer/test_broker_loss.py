"""broker_loss: a channel whose broker connection Celery closed after a loss raises a connection
error (which Celery's consumer handles by reconnecting), not an AttributeError that stops the worker.
The end-to-end case, Redis restarted under a campaign, is tests/bench/test_faults_redis.py."""

from __future__ import annotations

import pytest
from kombu import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from voicebot_dialer.broker_loss import survive_broker_loss


def test_a_detached_channel_raises_a_connection_error_celery_handles(redis_url: str) -> None:
    survive_broker_loss()
    with Connection(redis_url) as connection:
        channel = connection.channel()
        assert channel._connparams()["port"]  # attached: the transport's parameters
        channel.connection.client = None  # what closing the lost connection leaves behind
        with pytest.raises(RedisConnectionError) as raised:
            channel._connparams()
        # the consumer reconnects on these (kombu's list for the Redis transport)
        assert isinstance(raised.value, connection.transport.connection_errors)
        channel.connection.client = connection
