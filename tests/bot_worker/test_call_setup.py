"""Choosing the agent profile, variables and overrides for a call; the serializer's extra events."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame, InterruptionFrame
from pipecat.processors.frame_processor import FrameProcessorSetup

from helpers.constants import SHIPPED_PROFILES_PATH as PROFILES_PATH
from voicebot_core.calls import CallStore
from voicebot_core.dial_jobs import DialJobReader, encode_fields
from voicebot_core.profiles import AgentProfiles
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.twilio_protocol import StreamStart
from voicebot_worker.call_setup import CallSetup, prepare_call
from voicebot_worker.serializer import TwilioMarkFrame, TwilioStopFrame, VoicebotTwilioSerializer
from voicebot_worker.settings import WorkerSettings


def stream_start(**params: str) -> StreamStart:
    return StreamStart(stream_sid="MZ1", call_sid="CA1", account_sid="AC1", tracks=["inbound"],
                       custom_parameters=params)


@dataclass
class CallEnv:
    redis: aioredis.Redis
    keys: RedisKeys
    store: CallStore

    async def prepare(self, start: StreamStart, settings: WorkerSettings | None = None) -> CallSetup:
        return await prepare_call(start, AgentProfiles.load(PROFILES_PATH), DialJobReader(self.redis, self.keys),
                                  self.store, settings or WorkerSettings())


@pytest.fixture
async def call_env(redis_url, redis_prefix):
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = RedisKeys(redis_prefix)
    yield CallEnv(redis, keys, CallStore(redis, keys))
    await redis.aclose()


async def test_profile_from_parameter_number_or_default(call_env):
    settings = WorkerSettings(redis_prefix=call_env.keys.prefix)
    named = await call_env.prepare(stream_start(agent_profile="sales"), settings)
    assert named.profile.name == "sales" and named.direction == "inbound" and named.resumed_messages is None
    by_number = await call_env.prepare(stream_start(to="+15550100001"), settings)
    assert by_number.profile.name == "support-cloud"
    default = await call_env.prepare(stream_start(), settings)
    assert default.profile.name == "default"


async def test_dial_job_variables_and_overrides(call_env):
    await call_env.redis.hset(call_env.keys.dial_job("j1"), mapping=encode_fields(
        {"id": "j1", "variables": {"name": "Bo"}, "overrides": {"idle_timeout_s": 7}}))
    setup = await call_env.prepare(stream_start(direction="outbound", agent_profile="sales", dial_job_id="j1"))
    assert setup.direction == "outbound" and setup.variables == {"name": "Bo"}
    assert setup.profile.idle_timeout_s == 7
    assert setup.profile.greeting_for("outbound", setup.variables).startswith("Hi Bo,")


async def test_missing_or_broken_dial_job_is_tolerated(call_env):
    await call_env.redis.hset(call_env.keys.dial_job("broken"),
                              mapping={"id": "broken", "variables": "{not json", "overrides": "[1]"})
    for job in ("absent", "broken"):
        setup = await call_env.prepare(stream_start(direction="outbound", agent_profile="sales", dial_job_id=job))
        assert setup.variables == {} and setup.profile.name == "sales"


async def test_idle_timeout_setting_overrides_profiles(call_env):
    setup = await call_env.prepare(stream_start(agent_profile="sales"), WorkerSettings(worker_idle_timeout_s=2.5))
    assert setup.profile.idle_timeout_s == 2.5


async def test_existing_context_is_resumed(call_env):
    await call_env.store.checkpoint_context("CA1", [{"role": "user", "content": "hi"}])
    setup = await call_env.prepare(stream_start())
    assert setup.resumed_messages == [{"role": "user", "content": "hi"}]


class RecordingEvents:
    """What the serializer reports of the call's events, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_media_sent(self, duration_s: float) -> None:
        self.events.append(("media", round(duration_s, 3)))

    def on_mark_sent(self, name: str) -> None:
        self.events.append(("mark", name))

    def on_clear_sent(self) -> None:
        self.events.append(("clear", None))

    def on_output_paused(self, held_marks: list[str]) -> None:
        self.events.append(("paused", held_marks))

    def on_protocol_error(self, reason: str) -> None:
        self.events.append(("error", reason))


async def test_serializer_surfaces_marks_stop_dtmf_and_rejects_malformed():
    recorded = RecordingEvents()
    serializer = VoicebotTwilioSerializer(stream_sid="MZ1", params=VoicebotTwilioSerializer.InputParams(
        auto_hang_up=False), events=recorded)
    await serializer.setup(FrameProcessorSetup(clock=None, task_manager=None, pipeline_worker=None,
                                               audio_in_sample_rate=8000, audio_out_sample_rate=8000))
    mark = await serializer.deserialize(json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": "u1-c1"}}))
    assert isinstance(mark, TwilioMarkFrame) and mark.mark_name == "u1-c1"
    assert isinstance(await serializer.deserialize(json.dumps({"event": "stop", "stop": {}})), TwilioStopFrame)
    dtmf = await serializer.deserialize(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}}))
    assert isinstance(dtmf, InputDTMFFrame)
    media = await serializer.deserialize(json.dumps(
        {"event": "media", "streamSid": "MZ1", "media": {"payload": "/////w=="}}))
    assert isinstance(media, InputAudioRawFrame)
    clear = await serializer.serialize(InterruptionFrame())
    assert json.loads(clear) == {"event": "clear", "streamSid": "MZ1"}
    assert await serializer.deserialize('{"event": "media", "media": {}}') is None
    assert recorded.events[-1][0] == "error" and "payload" in str(recorded.events[-1][1])
    # after a protocol error the stream is being closed: nothing more is accepted
    assert await serializer.deserialize(json.dumps({"event": "stop", "stop": {}})) is None


@pytest.mark.parametrize(("bad_media", "reason"), [
    ({"event": "media", "streamSid": "MZ1", "media": {"payload": "!!!!" * 54}}, "media payload is not base64"),
    ({"event": "media", "streamSid": "MZ1", "media": {"payload": "/" * 215}}, "media payload is not base64"),
    ({"event": "media", "streamSid": "MZ1", "media": {"payload": "AA=A"}}, "media payload is not base64"),
    ({"event": "media", "media": {"payload": "/" * 216}}, "media frame without a streamSid"),
    ({"event": "media", "streamSid": "", "media": {"payload": "/" * 216}}, "media frame without a streamSid"),
])
async def test_serializer_refuses_media_with_a_bad_payload_or_no_stream_sid(bad_media, reason):
    """The worker is the last line: a media frame the gateway let through is refused here too
    (the call then closes its stream with the reason), and nothing after it is taken."""
    recorded = RecordingEvents()
    serializer = VoicebotTwilioSerializer(stream_sid="MZ1", params=VoicebotTwilioSerializer.InputParams(
        auto_hang_up=False), events=recorded)
    await serializer.setup(FrameProcessorSetup(clock=None, task_manager=None, pipeline_worker=None,
                                               audio_in_sample_rate=8000, audio_out_sample_rate=8000))
    good = {"event": "media", "streamSid": "MZ1", "media": {"payload": "/" * 216}}
    assert isinstance(await serializer.deserialize(json.dumps(good)), InputAudioRawFrame)
    assert await serializer.deserialize(json.dumps(bad_media)) is None
    assert recorded.events == [("error", reason)]
    assert await serializer.deserialize(json.dumps(good)) is None
    assert recorded.events == [("error", reason)]
