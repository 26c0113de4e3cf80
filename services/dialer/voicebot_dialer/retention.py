"""`python -m voicebot_dialer.retention`: delete the call data older than `VOICEBOT_CALL_DATA_RETENTION_DAYS`.

Stored recordings and transcripts go by call (every object of a call whose newest object is older
than the retention); the call index in Redis loses the calls created before it (the call records
themselves expire in Redis on their own). The chart runs it as a CronJob; it exits 0 after printing
what it deleted, non-zero when the store or Redis fails.
"""

from __future__ import annotations

import json
import logging
import time

from voicebot_core.call_media import CallMedia
from voicebot_core.logs import setup_logging
from voicebot_core.object_store import object_store
from voicebot_core.redis_client import connect_sync
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.settings import load_settings
from voicebot_dialer.settings import DialerSettings

log = logging.getLogger(__name__)


def purge(settings: DialerSettings, now: float | None = None) -> dict[str, int]:
    now = time.time() if now is None else now
    retention_s = settings.call_data_retention_s
    calls, objects = CallMedia(object_store(settings)).purge(retention_s, now)
    keys = RedisKeys(settings.redis_prefix)
    indexed = connect_sync(settings.redis_target).zremrangebyscore(keys.calls_index(), "-inf", now - retention_s)
    return {"calls_deleted": calls, "objects_deleted": objects, "index_entries_deleted": int(indexed)}


def main() -> None:
    settings = load_settings(DialerSettings)
    setup_logging("dialer-retention", settings.log_level, settings.log_json, settings.mask_phone_numbers)
    result = purge(settings)
    log.info("retention %.4g days: %s", settings.call_data_retention_days, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
