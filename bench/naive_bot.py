#!/usr/bin/env python3
"""A naive pipecat phone bot, shaped like pipecat's twilio-chatbot example: the baseline of bench/density.py.

One FastAPI app; per call: FastAPIWebsocketTransport + TwilioFrameSerializer with pipecat's RNNoiseFilter,
a SileroVADAnalyzer and a LocalSmartTurnAnalyzerV3 of its own (pipecat's defaults), STT -> user
aggregator -> LLM -> TTS -> output -> assistant aggregator. The services are our fake ones (the same
fixed latencies as the worker's agent profile), so only the plumbing differs. To be reachable through
the gateway it registers in the worker registry like a bot-worker (and does nothing else a worker does:
no marks, idle prompts, recording, call records).

Settings come from the same VOICEBOT_* variables as the worker (port, id, capacity, Redis, profiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/simulation", "services/bot-worker"):
    sys.path.insert(0, str(ROOT / package_dir))

import uvicorn  # noqa: E402
from fastapi import FastAPI, WebSocket  # noqa: E402
from pipecat.audio.filters.rnnoise_filter import RNNoiseFilter  # noqa: E402
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3  # noqa: E402
from pipecat.audio.vad.silero import SileroVADAnalyzer  # noqa: E402
from pipecat.frames.frames import TTSSpeakFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket  # noqa: E402
from pipecat.serializers.twilio import TwilioFrameSerializer  # noqa: E402
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport  # noqa: E402
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy  # noqa: E402
from pipecat.turns.user_turn_strategies import UserTurnStrategies  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from voicebot_core.profiles import AgentProfiles  # noqa: E402
from voicebot_core.redis_client import connect  # noqa: E402
from voicebot_core.redis_keys import RedisKeys  # noqa: E402
from voicebot_core.registry import WorkerRegistry  # noqa: E402
from voicebot_worker.providers.fake import build_fake_services  # noqa: E402

WORKER_ID = os.environ.get("VOICEBOT_WORKER_ID", "naive-bot")
PORT = int(os.environ.get("VOICEBOT_WORKER_PORT", "8099"))
CAPACITY = int(os.environ.get("VOICEBOT_WORKER_CAPACITY", "30"))
PROFILES = AgentProfiles.load(os.environ["VOICEBOT_AGENT_PROFILES_PATH"])
PROFILE = PROFILES.get(os.environ.get("NAIVE_PROFILE", "density"))


async def run_bot(websocket: WebSocket) -> None:
    _, call_data = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(
        stream_sid=call_data["stream_id"], call_sid=call_data["call_id"],
        account_sid=os.environ.get("VOICEBOT_TWILIO_ACCOUNT_SID", ""),
        auth_token=os.environ.get("VOICEBOT_TWILIO_AUTH_TOKEN", ""),
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(websocket=websocket, params=FastAPIWebsocketParams(
        audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer,
        audio_in_filter=RNNoiseFilter(),
    ))
    services = build_fake_services(PROFILE, None)  # type: ignore[arg-type]
    context = LLMContext(messages=[{"role": "system", "content": PROFILE.system_prompt()}])
    aggregators = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        vad_analyzer=SileroVADAnalyzer(),
        user_turn_strategies=UserTurnStrategies(
            stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())]),
    ))
    pipeline = Pipeline([transport.input(), services.stt, aggregators.user(), services.llm, services.tts,
                         transport.output(), aggregators.assistant()])
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000,
                                                            enable_metrics=True))

    @transport.event_handler("on_client_connected")
    async def on_connected(_transport, _client) -> None:
        await worker.queue_frame(TTSSpeakFrame(PROFILE.greeting_for("inbound")))

    @transport.event_handler("on_client_disconnected")
    async def on_disconnected(_transport, _client) -> None:
        await worker.cancel()

    await WorkerRunner(handle_sigint=False).run(worker)


def create_app() -> FastAPI:
    redis = connect(os.environ.get("VOICEBOT_REDIS_URL", "redis://127.0.0.1:6379/0"))
    registry = WorkerRegistry(redis, RedisKeys(prefix=os.environ.get("VOICEBOT_REDIS_PREFIX", "voicebot")),
                              heartbeat_ttl_s=10)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(2)
            with contextlib.suppress(Exception):
                await registry.heartbeat(WORKER_ID)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        await registry.register(WORKER_ID, f"ws://127.0.0.1:{PORT}", CAPACITY)
        task = asyncio.create_task(heartbeat())
        yield
        task.cancel()
        with contextlib.suppress(Exception):
            await registry.deregister(WORKER_ID)

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/streams/{call_sid}")
    async def stream(websocket: WebSocket, call_sid: str) -> None:
        await websocket.accept()
        await run_bot(websocket)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=PORT, log_level="warning")
