"""The pipecat pipeline of one call, on the stream the gateway relays from Twilio.

transport.input (caller_audio.py: noise filter and VAD batched across calls, the caller's audio to the
recorder, VAD events and the caller's audio down the pipeline) -> stream events (marks, stop) -> STT
-> user aggregator (turn strategies; Smart Turn on a shared thread, turns.py) -> caller audio sink
(the caller's frames end here) -> LLM -> speech intents -> TTS -> speech monitor (marks)
-> transport.output (hands the bot's audio to the recorder, transport.py) -> recorder (caller left, bot
right) -> assistant aggregator

The speech monitor and the output drop an interrupted reply's frames that outrun the interruption
(interruption.py); the assistant's messages are rewritten to what the caller heard (heard_context.py).

Everything the pipeline reports goes to one `CallEvents` (events.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import MetricsFrame
from pipecat.metrics.metrics import TTFBMetricsData
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_mute.mute_until_first_bot_complete_user_mute_strategy import (
    MuteUntilFirstBotCompleteUserMuteStrategy,
)

from voicebot_core import metrics, telemetry
from voicebot_worker.barge_in_pause import OutputPause
from voicebot_worker.call_setup import CallSetup
from voicebot_worker.caller_audio import CallerAudio
from voicebot_worker.events import CallEvents
from voicebot_worker.heard_context import HeardContext
from voicebot_worker.marks import MarkTracker, PlaybackClock
from voicebot_worker.noise import PhoneNoiseFilter
from voicebot_worker.processors import CallerAudioSink, SpeechIntentTap, SpeechMonitor, StreamEventsProcessor
from voicebot_worker.providers import ProviderServices
from voicebot_worker.serializer import VoicebotTwilioSerializer
from voicebot_worker.settings import WorkerSettings
from voicebot_worker.tools import CallTools
from voicebot_worker.transport import CallTransport
from voicebot_worker.turns import build_turn_strategies, build_vad
from voicebot_worker.vad import BatchedSileroVAD


@dataclass
class CallPipeline:
    """The parts of a built pipeline the call session still talks to."""

    services: ProviderServices
    serializer: VoicebotTwilioSerializer
    context: LLMContext
    pipeline_worker: PipelineWorker
    heard: HeardContext  # rewrites interrupted replies in `context` to what the caller heard

    def observe_ttfb(self, frame: MetricsFrame) -> None:
        """Feed the STT, LLM and TTS services' time to first byte into the service TTFB histogram."""
        services = self.services
        names = {services.stt.name: "stt", services.llm.name: "llm", services.tts.name: "tts"}
        for data in frame.data:
            if isinstance(data, TTFBMetricsData) and data.processor in names and data.value > 0:
                metrics.SERVICE_TTFB.labels(service=names[data.processor]).observe(data.value)


def build_pipeline(setup: CallSetup, websocket: WebSocket, settings: WorkerSettings, events: CallEvents,
                   tracker: MarkTracker, tools: CallTools, services: ProviderServices,
                   playback: PlaybackClock | None = None) -> CallPipeline:
    """`services`: from build_services, which may load models (run it off the event loop). `playback`:
    when the bot audio sent finishes playing at the caller (caller speech over it may be a backchannel)."""
    profile = setup.profile
    serializer = VoicebotTwilioSerializer(
        stream_sid=setup.start.stream_sid, call_sid=setup.call_sid, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(), base_url=settings.twilio_api_base_url,
        params=VoicebotTwilioSerializer.InputParams(auto_hang_up=False), events=events,
    )
    rate = services.pipeline_sample_rate
    # buffer_size (bytes of one 16-bit track) cuts the recording into segments the worker stores as it goes
    recorder = AudioBufferProcessor(sample_rate=rate, num_channels=2, auto_start_recording=profile.record,
                                    buffer_size=int(settings.worker_recording_segment_s * rate) * 2)
    vad = build_vad(settings.worker_vad_start_secs, settings.worker_vad_stop_secs,
                    settings.worker_vad_confidence, settings.worker_vad_min_volume)
    noise_filter = PhoneNoiseFilter() if profile.noise_filter else None
    transport = CallTransport(
        websocket=websocket,
        # the input transport starts and stops the filter; CallerAudio runs it
        params=FastAPIWebsocketParams(
            audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer,
            audio_in_filter=noise_filter, allowed_origins=[],
        ),
        caller_audio=CallerAudio(vad, noise_filter, recorder, settings.worker_quiet_audio_chunk_s),
        recorder=recorder,
        stream_sid=setup.start.stream_sid,
        on_paused=events.on_output_paused,
        audio_lead_s=settings.worker_audio_lead_s,
    )
    context = _context(setup, services, tools.register(services.llm))
    aggregators = LLMContextAggregatorPair(context, user_params=_user_params(setup, settings, vad, playback,
                                                                                   transport.output().pause))
    pipeline = Pipeline([
        transport.input(),
        StreamEventsProcessor(events),
        services.stt,
        aggregators.user(),
        CallerAudioSink(),
        services.llm,
        SpeechIntentTap(tracker),
        services.tts,
        SpeechMonitor(tracker, setup.start.stream_sid, events),
        transport.output(),
        recorder,
        aggregators.assistant(),
    ])
    # With tracing on, pipecat's conversation span is a child of our call.session span (the
    # current span here) and its turn/stt/llm/tts spans hang below it.
    pipeline_worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate, enable_metrics=True),
        enable_rtvi=False,
        # Turn tracking is an observer fed every frame (a queue put and a task wake-up per 20 ms frame);
        # only tracing reads it.
        enable_turn_tracking=telemetry.tracing_active(),
        idle_timeout_secs=None,  # the call session's ActivityWatchdog (watchdog.py), without a per-frame observer
        enable_tracing=telemetry.tracing_active(),
        conversation_id=setup.call_sid,
        additional_span_attributes=setup.span_attributes(settings.worker_id),
    )
    heard = HeardContext(context)
    _wire_events(events, transport, aggregators, recorder, heard)
    return CallPipeline(services=services, serializer=serializer, context=context, pipeline_worker=pipeline_worker,
                        heard=heard)


def _context(setup: CallSetup, services: ProviderServices, tools: list[FunctionSchema]) -> LLMContext:
    if setup.resumed_messages:
        messages = setup.resumed_messages
        skip = getattr(services.stt, "skip_utterances", None)  # scripted STT: continue the script
        if skip is not None:
            skip(sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user"))
    else:
        messages = [{"role": "system", "content": setup.profile.system_prompt(setup.variables)}]
    return (LLMContext(messages=messages, tools=ToolsSchema(standard_tools=tools)) if tools
            else LLMContext(messages=messages))


def _user_params(setup: CallSetup, settings: WorkerSettings, vad: BatchedSileroVAD,
                 playback: PlaybackClock | None, pause: OutputPause) -> LLMUserAggregatorParams:
    """`vad`: run by the call's CallerAudio, which sends its events down the pipeline (no VAD here).
    `pause`: the output's barge-in pause; a bot paused for the caller's speech counts as audible."""
    def bot_audible() -> bool:
        return pause.paused or (playback is not None and playback.remaining_s() > 0)

    return LLMUserAggregatorParams(
        user_turn_strategies=build_turn_strategies(setup.profile, settings.worker_speech_timeout_s, vad, bot_audible,
                                                   settings.worker_barge_in_min_speech_s, pause.resume_soon),
        # A callee answers with "hello?" while the greeting starts: on outbound calls the
        # greeting plays whole before caller speech counts (no barge-in, no turn).
        user_mute_strategies=(
            [MuteUntilFirstBotCompleteUserMuteStrategy()]
            if setup.direction == "outbound" and not setup.resumed_messages else []
        ),
    )


def _wire_events(events: CallEvents, transport: FastAPIWebsocketTransport, aggregators: LLMContextAggregatorPair,
                 recorder: AudioBufferProcessor, heard: HeardContext) -> None:
    @transport.event_handler("on_client_disconnected")
    async def _on_disconnected(_transport: Any, _ws: Any) -> None:
        await events.on_stream_closed()

    user = aggregators.user()

    @user.event_handler("on_user_turn_started")
    async def _on_user_turn_started(_agg: Any, _strategy: Any) -> None:
        events.on_user_turn_started()

    @user.event_handler("on_user_turn_stopped")
    async def _on_user_turn_stopped(_agg: Any, _strategy: Any, message: Any) -> None:
        await events.on_user_turn_stopped((message.content or "").strip())

    @aggregators.assistant().event_handler("on_assistant_turn_stopped")
    async def _on_assistant_turn_stopped(_agg: Any, message: Any) -> None:
        heard.assistant_turn_stopped(message.content or "")  # before the checkpoint the session takes now
        await events.on_assistant_turn_stopped()

    @recorder.event_handler("on_audio_data")
    async def _on_audio(_proc: Any, audio: bytes, sample_rate: int, num_channels: int) -> None:
        events.on_audio_recorded(audio, sample_rate, num_channels)
