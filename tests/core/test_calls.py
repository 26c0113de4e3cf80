import pytest
import redis
import redis.asyncio as aioredis

from voicebot_core.calls import CallRecordReader, CallStore
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
