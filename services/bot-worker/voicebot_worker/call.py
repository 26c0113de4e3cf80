"""One phone call: runs its pipeline (pipeline.py) from greeting to stored end, and handles its events.

The session owns the call's lifecycle and routes what the pipeline reports (events.py) to the mark
tracker, the idle timer (idle.py), call control (call_control.py) and the call's record (call_record.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from fastapi import WebSocket
from opentelemetry.trace import SpanKind
from pipecat.frames.frames import EndFrame, LLMRunFrame, MetricsFrame, TTSSpeakFrame
from pipecat.workers.runner import WorkerRunner
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voicebot_core import metrics, telemetry
from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallStore
from voicebot_core.registry import WorkerRegistry
from voicebot_core.vocabulary import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, is_terminal_status
from voicebot_worker.call_control import CallControl, CallEnd
from voicebot_worker.call_record import CallRecordWriter
from voicebot_worker.call_setup import CallSetup
from voicebot_worker.events import CallEvents
from voicebot_worker.idle import IdleTimer
from voicebot_worker.marks import BotUtterance, MarkTracker, PlaybackClock
from voicebot_worker.pipeline import CallPipeline, build_pipeline
from voicebot_worker.providers import build_services
from voicebot_worker.settings import WorkerSettings
from voicebot_worker.tools import CallTools
from voicebot_worker.watchdog import ActivityWatchdog

log = logging.getLogger(__name__)


class CallSession(CallEvents):
    def __init__(self, *, setup: CallSetup, websocket: WebSocket, settings: WorkerSettings, store: CallStore,
                 registry: WorkerRegistry, media: CallMedia) -> None:
        self.setup = setup
        self.call_sid = setup.call_sid
        self.profile = setup.profile
        self._ws = websocket
        self._settings = settings
        self.end = CallEnd()
        self.tracker = MarkTracker()
        self.playback = PlaybackClock()
        self.tracker.on_resolved.append(self._on_utterance_resolved)
        self._record = CallRecordWriter(setup, settings, store, registry, media)
        self._idle = IdleTimer(self.profile, self.call_sid, speak=self.speak, give_up=self._hang_up_on_silence)
        self._control = CallControl(
            call_sid=self.call_sid, profile=self.profile, settings=settings, end=self.end, tracker=self.tracker,
            playback=self.playback, speak=self.speak, end_pipeline=self._end_pipeline,
            closing_started=self._idle.stop, spawn=self._spawn,
        )
        self._speech_end_at: float | None = None  # caller speech end awaiting the bot's first audio
        self._watchdog = ActivityWatchdog(settings.worker_pipeline_idle_timeout_s, self._on_pipeline_idle)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pipeline: CallPipeline | None = None
        self.done = asyncio.Event()

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        # The gateway's traceparent comes back in the start message's customParameters.
        with telemetry.span("call.session", kind=SpanKind.SERVER, parent=self.setup.start.custom_parameters,
                            attrs=self.setup.span_attributes(self._settings.worker_id)) as session_span:
            self._control.trace_parent = dict(telemetry.inject_context())
            await self._run()
            session_span.set_attribute("call.outcome", self.end.outcome)
            session_span.set_attribute("call.end_reason", self.end.reason)

    async def _run(self) -> None:
        direction = self.setup.direction
        metrics.ACTIVE_CALLS.labels(direction=direction).inc()
        try:
            # Provider services may load model weights: off the event loop, which must keep answering
            # the gateway's liveness pings (VOICEBOT_GATEWAY_WORKER_LIVENESS_TIMEOUT_S) and the other calls.
            services = await asyncio.to_thread(build_services, self.profile, self._settings)
            self._pipeline = build_pipeline(self.setup, self._ws, self._settings, self, self.tracker,
                                            CallTools(self.profile, self._control), services, self.playback)
            await self._record.attached()
            await self._start_speaking(self._pipeline)
            self._spawn(self._watchdog.run())
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self._pipeline.pipeline_worker)
            await runner.run()
        except Exception:
            log.exception("call pipeline failed", extra={"call_sid": self.call_sid})
            self.end.set("failed", "pipeline_error")
        finally:
            metrics.ACTIVE_CALLS.labels(direction=direction).dec()
            await self._finish()

    async def _start_speaking(self, pipeline: CallPipeline) -> None:
        services, profile = pipeline.services, self.profile
        prewarm = getattr(services.tts, "prewarm", None)
        if prewarm is not None:
            prompts = [profile.idle_prompt, profile.idle_goodbye, profile.goodbye, profile.transfer_message]
            self._spawn(prewarm(prompts, services.pipeline_sample_rate))
        if not self.setup.resumed_messages:
            await self.speak(profile.greeting_for(self.setup.direction, self.setup.variables))
        elif self.setup.resumed_messages[-1].get("role") == "user":
            # The caller finished a turn that the worker before this one never answered: answer it now.
            await pipeline.pipeline_worker.queue_frame(LLMRunFrame())
        prefill = getattr(services.llm, "prefill", None)
        if prefill is not None:
            # local LLM: process the prompt while the greeting plays, not on the first turn
            self._spawn(prefill(pipeline.context))

    async def speak(self, text: str) -> None:
        self._idle.speech_requested()
        assert self._pipeline is not None
        await self._pipeline.pipeline_worker.queue_frame(TTSSpeakFrame(text))

    async def _end_pipeline(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.pipeline_worker.queue_frame(EndFrame())

    async def _finish(self) -> None:
        self._idle.stop()
        for task in list(self._tasks):
            task.cancel()
        context = self._pipeline.context if self._pipeline is not None else None
        await self._record.ended(self.end.outcome, self.end.reason, self.tracker.finalize(), context)
        metrics.CALL_OUTCOMES.labels(direction=self.setup.direction, outcome=self.end.outcome).inc()
        if self._ws.application_state == WebSocketState.CONNECTED:
            code = CLOSE_INTERNAL_ERROR if self.end.reason == "pipeline_error" else CLOSE_NORMAL
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self._ws.close(code=code)
        log.info("call ended: outcome=%s reason=%s", self.end.outcome, self.end.reason,
                 extra={"call_sid": self.call_sid})
        self.done.set()

    async def _cancel(self, reason: str) -> None:
        self.end.stopping(reason)
        if self._pipeline is not None:
            await self._pipeline.pipeline_worker.cancel(reason=reason)

    async def _on_pipeline_idle(self) -> None:
        log.warning("no activity in the call's pipeline for %.0f s, ending it",
                    self._settings.worker_pipeline_idle_timeout_s, extra={"call_sid": self.call_sid})
        await self._cancel("pipeline_idle")

    def _hang_up_on_silence(self) -> None:
        self._control.end_call(self.profile.idle_goodbye, "idle")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ outside events
    async def on_status(self, status: str) -> bool:
        """Twilio status callback (forwarded by the gateway). Ends the pipeline on a terminal status."""
        if not is_terminal_status(status) or self.done.is_set():
            return False
        if not self._control.closing:
            self.end.outcome = status  # completed (the caller hung up), canceled, failed, ...
        self._disable_hang_up()
        await self._cancel(f"status_{status}")
        return True

    async def shutdown(self, reason: str) -> None:
        await self._cancel(reason)

    def _disable_hang_up(self) -> None:
        if self._pipeline is not None:
            self._pipeline.serializer.disable_hang_up()

    # ------------------------------------------------------------------ CallEvents
    def on_media_sent(self, duration_s: float) -> None:
        self._watchdog.activity()
        now = time.monotonic()
        self._idle.audio_sent(now)
        if self._speech_end_at is not None and not self._idle.caller_speaking:
            metrics.TURN_LATENCY.observe(now - self._speech_end_at)
            self.tracker.answered(self._speech_end_at, now - self._speech_end_at)
            self._speech_end_at = None
        self.playback.on_media(duration_s)

    def on_mark_sent(self, name: str) -> None:
        self.tracker.mark_sent(name, self.playback.play_end)

    def on_clear_sent(self) -> None:
        self.playback.on_clear()
        if self.tracker.clear_sent():
            metrics.INTERRUPTIONS.inc()
            log.info("barge-in: bot speech cleared", extra={"call_sid": self.call_sid})

    def on_output_paused(self, held_marks: list[str]) -> None:
        """The output paused for caller speech over the bot and took back what the phone had not played;
        what it re-sends on resume is counted again."""
        self.playback.on_clear()
        self.tracker.hold(held_marks)

    def on_protocol_error(self, reason: str) -> None:
        log.warning("malformed frame from the gateway, closing the stream: %s", reason,
                    extra={"call_sid": self.call_sid})
        self.end.set("failed", "malformed_frame")
        metrics.FRAMES_DROPPED.labels(reason="malformed").inc()
        self._spawn(self._close_for_protocol_error(reason))

    async def _close_for_protocol_error(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self._ws.close(code=CLOSE_PROTOCOL_ERROR, reason=reason[:120])
        await self._cancel("malformed_frame")

    def on_mark_echo(self, name: str) -> None:
        self._watchdog.activity()
        self.tracker.mark_echoed(name)

    def on_stream_stop(self) -> None:
        log.info("Twilio stopped the stream", extra={"call_sid": self.call_sid})
        self._disable_hang_up()
        self._spawn(self._cancel("stream_stopped"))

    def on_dtmf(self, digit: str) -> None:
        self._spawn(self._record.dtmf(digit))

    def on_bot_started_speaking(self) -> None:
        self._idle.bot_started()

    def on_bot_stopped_speaking(self) -> None:
        self._idle.bot_stopped(self.playback.play_end)

    def on_vad_stopped(self, stop_secs: float) -> None:
        self._watchdog.activity()
        self._speech_end_at = time.monotonic() - stop_secs

    def on_metrics(self, frame: MetricsFrame) -> None:
        if self._pipeline is not None:
            self._pipeline.observe_ttfb(frame)

    async def on_stream_closed(self) -> None:
        log.info("stream closed by the gateway", extra={"call_sid": self.call_sid})
        await self._cancel("stream_closed")

    def on_user_turn_started(self) -> None:
        self._watchdog.activity()
        self._idle.caller_started()
        self._record.user_turn_started()

    async def on_user_turn_stopped(self, text: str) -> None:
        self._watchdog.activity()
        self._idle.caller_stopped(said_something=bool(text))
        if text:
            self._record.user_said(text)
            await self._checkpoint()
        if self._speech_end_at is None:
            self._speech_end_at = time.monotonic()

    async def on_assistant_turn_stopped(self) -> None:
        await self._checkpoint()

    def on_audio_recorded(self, audio: bytes, sample_rate: int, num_channels: int) -> None:
        self._record.recording.add(audio, sample_rate, num_channels)

    async def _checkpoint(self) -> None:
        await self._record.checkpoint(self._pipeline.context if self._pipeline is not None else None,
                                      self.tracker.utterances)

    def _on_utterance_resolved(self, utterance: BotUtterance) -> None:
        self._control.on_utterance_resolved(utterance)
        if self._pipeline is not None and self._pipeline.heard.utterance_resolved(utterance):
            self._spawn(self._checkpoint())
        if self.tracker.pending_marks == 0:
            self._idle.speech_heard()
