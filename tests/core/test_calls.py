import time

import pytest
import redis
import redis.asyncio as aioredis

from voicebot_core.calls import CallEventLog, CallRecordReader, CallStore
from voicebot_core.redis_keys import RedisKeys


async def test_writers_and_readers_share_one_call_record(redis_url, redis_prefix):
    keys = RedisKeys(redis_prefix)
    client = aioredis.from_url(redis_url, decode_responses=True)
    store = CallStore(client, keys)
    await store.upsert("CA1", direction="outbound", **{"from": "+15550002222"}, worker_id="w1",
                       recording="/recordings/CA1.wav")
    record = await store.record("CA1")
    assert (record.direction, record.from_, record.worker_id, record.recording) == (
        "outbound", "+15550002222", "w1", "/recordings/CA1.wav")
    await store.save_transcript("CA1", [{"role": "user", "text": "hi"}])
    reader = CallRecordReader(redis.Redis.from_url(redis_url, decode_responses=True), keys)
    assert reader.record("CA1").recording == "/recordings/CA1.wav"
    assert reader.transcript("CA1") == [{"role": "user", "text": "hi"}]
    assert reader.record("CA-unknown") is None and await store.record("CA-unknown") is None
    await client.aclose()


async def test_a_field_no_reader_knows_is_refused(redis_url, redis_prefix):
    client = aioredis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="recording_url"):
        await CallStore(client, RedisKeys(redis_prefix)).upsert("CA2", recording_url="x")
    assert not await client.exists(RedisKeys(redis_prefix).call("CA2"))
    await client.aclose()


async def test_the_reader_lists_newest_first_within_a_window_and_reads_events(redis_url, redis_prefix):
    keys = RedisKeys(redis_prefix)
    client = aioredis.from_url(redis_url, decode_responses=True)
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(client, keys)
    for sid, created_at in (("CA1", 1000.0), ("CA2", 2000.0), ("CA3", 3000.0)):
        await store.upsert(sid, direction="inbound")
        await client.zadd(keys.calls_index(), {sid: created_at})  # as if created then
    reader = CallRecordReader(sync, keys)
    assert reader.newest_sids(0, 10) == ["CA3", "CA2", "CA1"]
    assert reader.newest_sids(1, 1) == ["CA2"]
    assert reader.newest_sids(0, 10, since=1500, until=3000) == ["CA3", "CA2"]
    assert [r and r.direction for r in reader.records(["CA1", "CA-gone"])] == ["inbound", None]
    await store.add_event("CA1", "stream_started", worker_id="w1")
    before = time.time()
    written = CallEventLog(sync, keys).add_event("CA1", "hangup_requested", api_key_id="k1")
    events = reader.events("CA1")
    assert [e["kind"] for e in events] == ["stream_started", "hangup_requested"]
    assert events[1] == written and events[1]["at"] >= before and events[1]["api_key_id"] == "k1"
    streamed = [entry["event"] for _, entry in await client.xrange(keys.call_event_stream())]
    assert len(streamed) == 2 and '"hangup_requested"' in streamed[1]
    await client.aclose()
    sync.close()
