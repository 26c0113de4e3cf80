import pytest
import redis.asyncio as aioredis

from voicebot_core import answering_machine
from voicebot_core.dial_jobs import DialJob, DialJobReader, decode_job, encode_fields
from voicebot_core.profiles import AgentProfiles, ProfilesFile
from voicebot_core.redis_keys import RedisKeys

JOB = {"id": "dj_1", "state": "ringing", "to": "+15557000006", "from": "+15550002222", "agent_profile": "sales",
       "variables": {"name": "Sam"}, "overrides": {"voice": "x"}, "metadata": {"crm": 1}, "attempt": 2,
       "max_attempts": 3, "record": True, "machine_detection": "voicemail"}


def test_codec_round_trips_what_the_dialer_stores():
    stored = encode_fields(JOB)
    assert all(isinstance(v, str) for v in stored.values())
    assert stored["record"] == "1" and stored["variables"] == '{"name": "Sam"}'
    assert decode_job(stored) == {**JOB, "attempt": 2, "max_attempts": 3, "record": "1"}


async def test_reader_gives_other_services_a_typed_dial_job(redis_url, redis_prefix):
    redis = aioredis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    await redis.hset(keys.dial_job("dj_1"), mapping=encode_fields(JOB))
    job = await DialJobReader(redis, keys).get("dj_1")
    assert isinstance(job, DialJob)
    assert (job.to, job.from_, job.variables, job.overrides, job.attempt) == (
        "+15557000006", "+15550002222", {"name": "Sam"}, {"voice": "x"}, 2)
    assert not job.is_terminal
    assert await DialJobReader(redis, keys).get("dj_missing") is None
    await redis.aclose()


def test_a_field_that_is_not_json_is_ignored_not_fatal():
    job = DialJob.from_hash({"id": "dj_2", "variables": "{not json", "overrides": "[1]", "machine_detection": ""})
    assert job.variables == {} and job.overrides == {} and job.machine_detection == "none"


@pytest.mark.parametrize(("policy", "answered_by", "acts"), [
    ("voicemail", "machine_end_beep", True), ("hangup", "fax", True), ("none", "machine_start", False),
    ("voicemail", "human", False), ("voicemail", "unknown", False)])
def test_one_machine_policy_decides_when_a_machine_ends_the_call(policy, answered_by, acts):
    assert answering_machine.acts_on(DialJob(id="dj", machine_detection=policy), answered_by) is acts


def test_voicemail_message_is_filled_from_the_job_variables():
    profiles = AgentProfiles(ProfilesFile(default_profile="sales", profiles={
        "sales": {"voicemail_message": "Hi {name}, call us back about {topic}."}}))
    job = DialJob(id="dj", agent_profile="sales", machine_detection="voicemail", variables={"name": "Sam"})
    assert answering_machine.voicemail_message(job, profiles) == "Hi Sam, call us back about {topic}."
    assert "<Say>Hi Sam, call us back about {topic}.</Say><Hangup/>" in answering_machine.machine_twiml(job, profiles)
    hang_up_job = job.model_copy(update={"machine_detection": "hangup"})
    assert answering_machine.voicemail_message(hang_up_job, profiles) == ""
