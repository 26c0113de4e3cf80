"""One phone call: a pipecat PipelineWorker on the stream the gateway relays from Twilio.

transport.input -> stream events (marks, stop) -> STT -> user aggregator (VAD, turns)
-> LLM -> speech intents -> TTS -> speech monitor (marks) -> transport.output
-> recorder (caller left, bot right) -> assistant aggregator
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from fastapi import WebSocket
from opentelemetry.trace import SpanKind
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.filters.rnnoise_filter import RNNoiseFilter
from pipecat.frames.frames import EndFrame, FunctionCallResultProperties, MetricsFrame, TTSSpeakFrame
from pipecat.metrics.metrics import TTFBMetricsData
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.services.llm_service import FunctionCallParams
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_mute.mute_until_first_bot_complete_user_mute_strategy import (
    MuteUntilFirstBotCompleteUserMuteStrategy,
)
from pipecat.workers.runner import WorkerRunner
from starlette.websockets import WebSocketDisconnect, WebSocketState
from twilio.base.exceptions import TwilioRestException

from voicebot_core import metrics, telemetry
from voicebot_core.audio import write_wav
from voicebot_core.calls import CallStore
from voicebot_core.profiles import AgentProfile, AgentProfiles
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.twilio_protocol import StreamStart
from voicebot_core.twilio_rest import call_is_gone, make_client
from voicebot_worker.marks import BotUtterance, MarkTracker, PlaybackClock
from voicebot_worker.processors import SpeechIntentTap, SpeechMonitor, StreamEventsProcessor
from voicebot_worker.providers import ProviderServices, build_services
from voicebot_worker.serializer import StreamHooks, VoicebotTwilioSerializer
from voicebot_worker.settings import WorkerSettings
from voicebot_worker.turns import build_turn_strategies, build_vad

log = logging.getLogger(__name__)

TERMINAL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
CLOSE_PROTOCOL_ERROR = 1007
CLOSE_INTERNAL_ERROR = 1011
# Upper bound for a prompt's audio to start after we ask for it; the measured lead is clamped here.
MAX_PROMPT_LEAD_S = 0.5
FINAL_SPEECH_TIMEOUT_S = 30.0


@dataclass
class CallSetup:
    """Everything decided before the pipeline starts."""

    start: StreamStart
    direction: str
    profile: AgentProfile
    variables: dict[str, str] = field(default_factory=dict)
    resumed_messages: list[dict[str, Any]] | None = None


async def prepare_call(start: StreamStart, profiles: AgentProfiles, redis: aioredis.Redis, keys: RedisKeys,
                       store: CallStore, settings: WorkerSettings) -> CallSetup:
    params = start.custom_parameters
    direction = "outbound" if params.get("direction") == "outbound" else "inbound"
    our_number = params.get("from", "") if direction == "outbound" else params.get("to", "")
    profile_name = params.get("agent_profile") or profiles.for_number(our_number)
    variables: dict[str, str] = {}
    overrides: dict[str, Any] = {}
    if params.get("dial_job_id"):
        job = await redis.hgetall(keys.dial_job(params["dial_job_id"]))
        variables = {str(k): str(v) for k, v in _json_field(job, "variables").items()}
        overrides = _json_field(job, "overrides")
    profile = profiles.get(profile_name, overrides)
    if settings.idle_timeout_s is not None:
        profile = profile.model_copy(update={"idle_timeout_s": settings.idle_timeout_s})
    resumed = await store.load_context(start.call_sid)
    return CallSetup(start=start, direction=direction, profile=profile, variables=variables,
                     resumed_messages=resumed or None)


def _json_field(job: dict[str, str], name: str) -> dict[str, Any]:
    raw = job.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning("dial job field %s is not JSON; ignoring it", name)
        return {}
    return value if isinstance(value, dict) else {}


class CallSession(StreamHooks):
    def __init__(self, *, setup: CallSetup, websocket: WebSocket, settings: WorkerSettings, store: CallStore,
                 registry: WorkerRegistry) -> None:
        self.setup = setup
        self.call_sid = setup.start.call_sid
        self.profile = setup.profile
        self._ws = websocket
        self._settings = settings
        self._store = store
        self._registry = registry
        self.tracker = MarkTracker()
        self.playback = PlaybackClock()
        self.tracker.on_resolved.append(self._on_utterance_resolved)
        self.outcome = "completed"
        self.end_reason = "hangup"
        self.recording_path: str | None = None
        self._user_entries: list[dict[str, Any]] = []
        self._user_turn_started_at: float | None = None
        self._user_turn_active = False
        self._bot_speaking = False
        self._ending = False
        self._closing_text: str | None = None
        self._closing_played = asyncio.Event()
        self._idle_task: asyncio.Task[None] | None = None
        self._idle_prompts = 0
        self._prompt_requested_at: float | None = None
        self._prompt_lead_s = 0.1
        self._speech_end_at: float | None = None  # caller speech end awaiting the bot's first audio
        self._tasks: set[asyncio.Task[Any]] = set()
        self._services: ProviderServices | None = None
        self.worker: PipelineWorker | None = None
        self.context: LLMContext | None = None
        self.done = asyncio.Event()
        self._session_trace: dict[str, str] = {}  # the call.session span's traceparent

    # ------------------------------------------------------------------ building
    def _build(self) -> PipelineWorker:
        start, profile, settings = self.setup.start, self.profile, self._settings
        services = build_services(profile, settings)
        self._services = services
        serializer = VoicebotTwilioSerializer(
            stream_sid=start.stream_sid, call_sid=self.call_sid, account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(), base_url=settings.twilio_api_base_url,
            params=VoicebotTwilioSerializer.InputParams(auto_hang_up=False), hooks=self,
        )
        self.serializer = serializer
        transport = FastAPIWebsocketTransport(
            websocket=self._ws,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer,
                audio_in_filter=RNNoiseFilter() if profile.noise_filter else None, allowed_origins=[],
            ),
        )
        if self.setup.resumed_messages:
            messages = self.setup.resumed_messages
            skip = getattr(services.stt, "skip_utterances", None)  # scripted STT: continue the script
            if skip is not None:
                skip(sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user"))
        else:
            messages = [{"role": "system", "content": profile.system_prompt(self.setup.variables)}]
        tools = self._tools(services)
        self.context = (LLMContext(messages=messages, tools=ToolsSchema(standard_tools=tools)) if tools
                        else LLMContext(messages=messages))
        aggregators = LLMContextAggregatorPair(
            self.context,
            user_params=LLMUserAggregatorParams(
                vad_analyzer=build_vad(settings.vad_start_secs, settings.vad_stop_secs, settings.vad_confidence,
                                      settings.vad_min_volume),
                user_turn_strategies=build_turn_strategies(profile, settings.speech_timeout_s),
                # A callee answers with "hello?" while the greeting starts: on outbound calls the
                # greeting plays whole before caller speech counts (no barge-in, no turn).
                user_mute_strategies=(
                    [MuteUntilFirstBotCompleteUserMuteStrategy()]
                    if self.setup.direction == "outbound" and not self.setup.resumed_messages else []
                ),
            ),
        )
        self._recorder = AudioBufferProcessor(num_channels=2, auto_start_recording=profile.record)
        pipeline = Pipeline([
            transport.input(),
            StreamEventsProcessor(self),
            services.stt,
            aggregators.user(),
            services.llm,
            SpeechIntentTap(self.tracker),
            services.tts,
            SpeechMonitor(self.tracker, start.stream_sid, self),
            transport.output(),
            self._recorder,
            aggregators.assistant(),
        ])
        rate = services.pipeline_sample_rate
        # With tracing on, pipecat's conversation span is a child of our call.session span (the
        # current span here) and its turn/stt/llm/tts spans hang below it.
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate, enable_metrics=True),
            enable_rtvi=False,
            idle_timeout_secs=settings.pipeline_idle_timeout_s,
            cancel_runner_on_idle_timeout=False,
            enable_tracing=telemetry.tracing_active(),
            conversation_id=self.call_sid,
            additional_span_attributes=self._span_attributes(),
        )
        self._wire_events(transport, aggregators)
        return worker

    def _tools(self, services: ProviderServices) -> list[FunctionSchema]:
        tools: list[FunctionSchema] = []
        if "end_call" in self.profile.tools:
            tools.append(FunctionSchema(
                name="end_call", description="Say goodbye and hang up, when the caller is done or asks to end "
                "the call.", properties={}, required=[]))
            services.llm.register_function("end_call", self._end_call_tool)
        if "transfer_to_human" in self.profile.tools:
            tools.append(FunctionSchema(
                name="transfer_to_human", description="Transfer the caller to a human agent, when they ask "
                "for a person or you cannot help.", properties={}, required=[]))
            services.llm.register_function("transfer_to_human", self._transfer_tool)
        return tools

    def _wire_events(self, transport: FastAPIWebsocketTransport, aggregators: LLMContextAggregatorPair) -> None:
        @transport.event_handler("on_client_disconnected")
        async def _on_disconnected(_transport: Any, _ws: Any) -> None:
            log.info("stream closed by the gateway", extra={"call_sid": self.call_sid})
            await self._cancel("stream_closed")

        user = aggregators.user()

        @user.event_handler("on_user_turn_started")
        async def _on_user_turn_started(_agg: Any, _strategy: Any) -> None:
            self._user_turn_active = True
            self._user_turn_started_at = time.time()
            self._cancel_idle()

        @user.event_handler("on_user_turn_stopped")
        async def _on_user_turn_stopped(_agg: Any, _strategy: Any, message: Any) -> None:
            self._user_turn_active = False
            text = (message.content or "").strip()
            if text:
                self._idle_prompts = 0
                self._user_entries.append({"role": "user", "text": text,
                                           "at": round(self._user_turn_started_at or time.time(), 3)})
                await self._checkpoint()
            if self._speech_end_at is None:
                self._speech_end_at = time.monotonic()

        @aggregators.assistant().event_handler("on_assistant_turn_stopped")
        async def _on_assistant_turn_stopped(_agg: Any, _message: Any) -> None:
            await self._checkpoint()

        @self._recorder.event_handler("on_audio_data")
        async def _on_audio(_proc: Any, audio: bytes, sample_rate: int, num_channels: int) -> None:
            self._write_recording(audio, sample_rate, num_channels)

    def _span_attributes(self) -> dict[str, str]:
        return {"call.sid": self.call_sid, "call.direction": self.setup.direction,
                "agent.profile": self.profile.name, "worker.id": self._settings.worker_id}

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        # The gateway's traceparent comes back in the start message's customParameters.
        with telemetry.span("call.session", kind=SpanKind.SERVER, parent=self.setup.start.custom_parameters,
                            attrs=self._span_attributes()) as session_span:
            self._session_trace = dict(telemetry.inject_context())
            await self._run()
            session_span.set_attribute("call.outcome", self.outcome)
            session_span.set_attribute("call.end_reason", self.end_reason)

    async def _run(self) -> None:
        direction = self.setup.direction
        metrics.ACTIVE_CALLS.labels(direction=direction).inc()
        try:
            self.worker = self._build()
            await self._store.upsert(self.call_sid, worker_id=self._settings.worker_id,
                                     agent_profile=self.profile.name, stream_sid=self.setup.start.stream_sid,
                                     attached_at=time.time())
            await self._store.add_event(self.call_sid, "worker_attached", worker_id=self._settings.worker_id,
                                        resumed=bool(self.setup.resumed_messages))
            prewarm = getattr(self._services.tts, "prewarm", None)
            if prewarm is not None:
                prompts = [self.profile.idle_prompt, self.profile.idle_goodbye, self.profile.goodbye,
                           self.profile.transfer_message]
                self._spawn(prewarm(prompts, self._services.pipeline_sample_rate))
            if not self.setup.resumed_messages:
                greeting = self.profile.greeting_for(direction, self.setup.variables)  # type: ignore[arg-type]
                await self.speak(greeting)
            prefill = getattr(self._services.llm, "prefill", None)
            if prefill is not None and self.context is not None:
                # local LLM: process the prompt while the greeting plays, not on the first turn
                self._spawn(prefill(self.context))
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self.worker)
            await runner.run()
        except Exception:
            log.exception("call pipeline failed", extra={"call_sid": self.call_sid})
            self.outcome, self.end_reason = "failed", "pipeline_error"
        finally:
            metrics.ACTIVE_CALLS.labels(direction=direction).dec()
            await self._finish()

    async def speak(self, text: str) -> None:
        self._prompt_requested_at = time.monotonic()
        assert self.worker is not None
        await self.worker.queue_frame(TTSSpeakFrame(text))

    async def _finish(self) -> None:
        self._cancel_idle()
        for task in list(self._tasks):
            task.cancel()
        utterances = self.tracker.finalize()
        transcript = sorted(self._user_entries + [u.record() for u in utterances if u.text],
                            key=lambda entry: entry["at"])
        try:
            if self.setup.resumed_messages:  # failover: keep what the earlier worker stored
                transcript = (await self._store.transcript(self.call_sid) or []) + transcript
            await self._store.save_transcript(self.call_sid, transcript)
            if self.context is not None:
                await self._store.checkpoint_context(self.call_sid, _jsonable(self.context.get_messages()))
            await self._store.upsert(self.call_sid, outcome=self.outcome, end_reason=self.end_reason,
                                     recording=self.recording_path or "", ended_at=time.time())
            await self._store.add_event(self.call_sid, "worker_call_ended", outcome=self.outcome,
                                        reason=self.end_reason)
            await self._registry.release(self._settings.worker_id, self.call_sid)
        except Exception:
            log.exception("could not store the call's end", extra={"call_sid": self.call_sid})
        metrics.CALL_OUTCOMES.labels(direction=self.setup.direction, outcome=self.outcome).inc()
        if self._ws.application_state == WebSocketState.CONNECTED:
            code = CLOSE_INTERNAL_ERROR if self.end_reason == "pipeline_error" else 1000
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self._ws.close(code=code)
        log.info("call ended: outcome=%s reason=%s", self.outcome, self.end_reason,
                 extra={"call_sid": self.call_sid})
        self.done.set()

    async def _cancel(self, reason: str) -> None:
        if self.end_reason == "hangup":
            self.end_reason = reason
        if self.worker is not None:
            await self.worker.cancel(reason=reason)

    async def _checkpoint(self) -> None:
        if self.context is None:
            return
        try:
            await self._store.checkpoint_context(self.call_sid, _jsonable(self.context.get_messages()))
        except Exception:
            log.exception("context checkpoint failed", extra={"call_sid": self.call_sid})

    def _write_recording(self, audio: bytes, sample_rate: int, num_channels: int) -> None:
        if not audio:
            return
        pcm = np.frombuffer(audio, dtype="<i2")
        if num_channels > 1:
            pcm = pcm[: len(pcm) - len(pcm) % num_channels].reshape(-1, num_channels)
        path = Path(self._settings.recordings_dir).resolve() / f"{self.call_sid}.wav"
        self.recording_path = str(write_wav(path, pcm, sample_rate))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ outside events
    async def on_status(self, status: str) -> bool:
        """Twilio status callback (forwarded by the gateway). Ends the pipeline on a terminal status."""
        if status not in TERMINAL_STATUSES or self.done.is_set():
            return False
        if not self._ending:
            self.outcome = status  # completed (the caller hung up), canceled, failed, ...
        self.serializer.disable_hang_up()
        await self._cancel(f"status_{status}")
        return True

    async def shutdown(self, reason: str) -> None:
        await self._cancel(reason)

    # StreamHooks (called by the serializer)
    def on_media_sent(self, duration_s: float) -> None:
        now = time.monotonic()
        if self._prompt_requested_at is not None:
            lead = now - self._prompt_requested_at
            self._prompt_lead_s = min(MAX_PROMPT_LEAD_S, 0.5 * self._prompt_lead_s + 0.5 * lead)
            self._prompt_requested_at = None
        if self._speech_end_at is not None and not self._user_turn_active:
            metrics.TURN_LATENCY.observe(now - self._speech_end_at)
            self._speech_end_at = None
        self.playback.on_media(duration_s)

    def on_mark_sent(self, name: str) -> None:
        self.tracker.mark_sent(name, self.playback.play_end)

    def on_clear_sent(self) -> None:
        self.playback.on_clear()
        if self.tracker.clear_sent():
            metrics.INTERRUPTIONS.inc()
            log.info("barge-in: bot speech cleared", extra={"call_sid": self.call_sid})

    def on_protocol_error(self, reason: str) -> None:
        log.warning("malformed frame from the gateway, closing the stream: %s", reason,
                    extra={"call_sid": self.call_sid})
        self.outcome, self.end_reason = "failed", "malformed_frame"
        metrics.FRAMES_DROPPED.labels(reason="malformed").inc()
        self._spawn(self._close_for_protocol_error(reason))

    async def _close_for_protocol_error(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self._ws.close(code=CLOSE_PROTOCOL_ERROR, reason=reason[:120])
        await self._cancel("malformed_frame")

    # SessionEvents (called by the pipeline processors)
    def on_mark_echo(self, name: str) -> None:
        self.tracker.mark_echoed(name)

    def on_stream_stop(self) -> None:
        log.info("Twilio stopped the stream", extra={"call_sid": self.call_sid})
        self.serializer.disable_hang_up()
        self._spawn(self._cancel("stream_stopped"))

    def on_dtmf(self, digit: str) -> None:
        self._spawn(self._store.add_event(self.call_sid, "dtmf", digit=digit))

    def on_bot_started_speaking(self) -> None:
        self._bot_speaking = True
        self._cancel_idle()

    def on_bot_stopped_speaking(self) -> None:
        self._bot_speaking = False
        if not self._user_turn_active:
            self._arm_idle(self.playback.play_end)

    def on_vad_stopped(self, stop_secs: float) -> None:
        self._speech_end_at = time.monotonic() - stop_secs

    def on_metrics(self, frame: MetricsFrame) -> None:
        services = self._services
        if services is None:
            return
        names = {services.stt.name: "stt", services.llm.name: "llm", services.tts.name: "tts"}
        for data in frame.data:
            if isinstance(data, TTFBMetricsData) and data.processor in names and data.value > 0:
                metrics.SERVICE_TTFB.labels(service=names[data.processor]).observe(data.value)

    def _on_utterance_resolved(self, utterance: BotUtterance) -> None:
        if self._closing_text is not None and utterance.intent and utterance.intent.text == self._closing_text:
            self._closing_played.set()
        # The last mark came back: the caller just heard the end of the bot's speech.
        if self._idle_task is not None and not self._bot_speaking and self.tracker.pending_marks == 0:
            self._arm_idle(time.monotonic())

    # ------------------------------------------------------------------ idle prompts
    def _arm_idle(self, audio_end: float) -> None:
        if self._ending or self.profile.idle_timeout_s <= 0:
            return
        self._cancel_idle()
        fire_at = audio_end + self.profile.idle_timeout_s - self._prompt_lead_s
        self._idle_task = asyncio.get_running_loop().create_task(self._idle_after(fire_at))

    def _cancel_idle(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None

    async def _idle_after(self, fire_at: float) -> None:
        await asyncio.sleep(max(0.0, fire_at - time.monotonic()))
        self._idle_task = None
        if self._ending or self._user_turn_active or self._bot_speaking:
            return
        if self._idle_prompts < self.profile.max_idle_prompts:
            self._idle_prompts += 1
            metrics.IDLE_PROMPTS.inc()
            log.info("caller silent: idle prompt %d", self._idle_prompts, extra={"call_sid": self.call_sid})
            await self.speak(self.profile.idle_prompt)
        else:
            self._spawn(self._say_then(self.profile.idle_goodbye, "completed", "idle", self._hang_up))

    # ------------------------------------------------------------------ tools and call control
    async def _end_call_tool(self, params: FunctionCallParams) -> None:
        metrics.TOOL_CALLS.labels(tool="end_call").inc()
        await params.result_callback({"status": "ending the call"},
                                     properties=FunctionCallResultProperties(run_llm=False))
        self._spawn(self._say_then(self.profile.goodbye, "completed", "end_call", self._hang_up))

    async def _transfer_tool(self, params: FunctionCallParams) -> None:
        metrics.TOOL_CALLS.labels(tool="transfer_to_human").inc()
        if not self.profile.transfer_number:
            await params.result_callback({"error": "no human agent is available for transfer"})
            return
        await params.result_callback({"status": "transferring"},
                                     properties=FunctionCallResultProperties(run_llm=False))
        self._spawn(self._say_then(self.profile.transfer_message, "transferred", "transfer", self._transfer))

    async def _say_then(self, text: str, outcome: str, reason: str, action: Any) -> None:
        """Speak `text`, wait until the caller heard it (its marks came back), then act and end."""
        if self._ending:
            return
        self._ending = True
        self._cancel_idle()
        self._closing_text = text
        self._closing_played.clear()
        await self.speak(text)
        await self._wait_closing_played()
        self.outcome, self.end_reason = outcome, reason
        await action()
        if self.worker is not None:
            await self.worker.queue_frame(EndFrame())

    async def _wait_closing_played(self) -> None:
        deadline = time.monotonic() + FINAL_SPEECH_TIMEOUT_S
        while time.monotonic() < deadline and not self._closing_played.is_set():
            spoken = [u for u in self.tracker.utterances if u.intent and u.intent.text == self._closing_text]
            # Without mark echoes, trust the playback clock (plus a grace period for the echo).
            if spoken and spoken[-1].closed and time.monotonic() > self.playback.play_end + 1.0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing_played.wait(), timeout=0.05)

    async def _hang_up(self) -> None:
        # Explicit parent: this runs in a task spawned under whichever pipecat span was current.
        with telemetry.span("call.hangup", kind=SpanKind.CLIENT, parent=self._session_trace or None,
                            attrs={"call.sid": self.call_sid, "call.outcome": self.outcome}):
            await self._update_call(status="completed")

    async def _transfer(self) -> None:
        await self._update_call(twiml=f"<Response><Dial>{self.profile.transfer_number}</Dial></Response>")

    async def _update_call(self, **fields: str) -> None:
        settings = self._settings
        client = make_client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                             settings.twilio_api_base_url)
        try:
            await asyncio.to_thread(lambda: client.calls(self.call_sid).update(**fields))
        except TwilioRestException as exc:
            if call_is_gone(exc):
                log.info("call already ended at Twilio", extra={"call_sid": self.call_sid})
            else:
                log.error("Twilio call update failed: %s", exc.msg, extra={"call_sid": self.call_sid})
        except Exception as exc:  # network errors must not leave the pipeline hanging
            log.error("Twilio call update failed: %s", exc, extra={"call_sid": self.call_sid})


def _jsonable(messages: list[Any]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(messages, default=str))
