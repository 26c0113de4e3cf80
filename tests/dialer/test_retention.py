"""`python -m voicebot_dialer.retention`: stored recordings and transcripts of calls older than the
retention go, newer calls stay, and the call index in Redis loses the old calls."""

from __future__ import annotations

import json
import os
import subprocess
import time

import redis
from dialer_helpers import PYTHON, PYTHONPATH, ROOT, settings_env

from voicebot_core.call_media import CallMedia
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_dialer.settings import DialerSettings

OLD, RECENT = "CA" + "0d" * 16, "CA" + "0e" * 16


def test_the_retention_job_deletes_old_calls_and_keeps_recent_ones(dialer_settings: DialerSettings,
                                                                    sync_redis: redis.Redis) -> None:
    settings = dialer_settings.model_copy(update={"call_data_retention_days": 7})
    root = settings.storage_dir
    media = CallMedia(FilesystemObjectStore(root))
    now = time.time()
    for sid in (OLD, RECENT):
        media.put_recording_segment(sid, "w1", 0, b"\0\0" * 160, 8000, 2)
        media.put_transcript(sid, [{"role": "user", "text": "hi", "at": now}])
    eight_days_ago = now - 8 * 86400
    for obj in media.store.list(f"calls/{OLD}/"):
        os.utime(os.path.join(root, obj.key), (eight_days_ago, eight_days_ago))
    index = RedisKeys(settings.redis_prefix).calls_index()
    sync_redis.zadd(index, {OLD: eight_days_ago, RECENT: now})

    env = {**os.environ, **settings_env(settings), "PYTHONPATH": PYTHONPATH, "VOICEBOT_LOG_JSON": "0"}
    done = subprocess.run([PYTHON, "-m", "voicebot_dialer.retention"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "calls_deleted": 1, "objects_deleted": 2, "index_entries_deleted": 1}
    assert media.recording_wav(OLD) is None and media.transcript(OLD) is None
    assert media.recording_wav(RECENT) is not None and media.transcript(RECENT)
    assert sync_redis.zrange(index, 0, -1) == [RECENT]
