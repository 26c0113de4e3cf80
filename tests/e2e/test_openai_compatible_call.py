"""A `cloud` agent profile whose LLM is an OpenAI-compatible service at a configured base URL,
through the whole stack: the bot-worker's real OpenAI client path (cloud.py -> pipecat's
OpenAILLMService with base_url) reaches the local llama.cpp server (the small model) instead of
api.openai.com, as it would reach OpenAI, Groq, vLLM or Ollama. Speech runs locally (whisper, Piper)
so the call needs no network. A recording proxy in front of the server shows what the client sent.

Deepgram and Cartesia have no offline stand-in here: those providers stay untested offline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from helpers.servers import uvicorn_thread
from voicebot_core.redis_keys import RedisKeys
from voicebot_devstack.processes import Process, free_port, python
from voicebot_devstack.stack import Stack, StackConfig

pytestmark = pytest.mark.models
NUMBER = "+15557000010"
STAND_IN_KEY = "sk-stand-in-not-a-real-key"
SCRIPT = {"name": "openai-compatible", "voice": "piper", "steps": [
    {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 60}},
    {"say": "Hello, I would like to book a plumber for my kitchen sink."},
    {"wait_for_bot": {"silence_s": 1.5, "timeout_s": 90}},
    {"hangup": {}},
]}


def _recording_proxy(upstream: str, seen: list[dict]) -> FastAPI:
    """Forwards everything to `upstream` unchanged (streamed), noting path, auth header and body."""
    app = FastAPI()
    client = httpx.AsyncClient(base_url=upstream, timeout=120)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> StreamingResponse:
        body = await request.body()
        seen.append({"path": f"/{path}", "authorization": request.headers.get("authorization", ""),
                     "body": json.loads(body) if body else None})
        upstream_request = client.build_request(
            request.method, f"/{path}", content=body,
            headers={"content-type": request.headers.get("content-type", "application/json")})
        response = await client.send(upstream_request, stream=True)
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                 headers={"content-type": response.headers.get("content-type", "")},
                                 background=BackgroundTask(response.aclose))

    return app


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory, models_dir: Path):
    port = free_port()
    run = tmp_path_factory.mktemp("openai-llm")
    proc = Process("llm-server", python("voicebot_worker.llm_server", "--model",
                                        str(models_dir / "smollm2-135m" / "model.gguf"), "--port", str(port)),
                   {}, run / "llm-server.log", f"http://127.0.0.1:{port}/health").start()
    try:
        proc.wait_healthy(timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def openai_stack(tmp_path_factory, models_dir: Path, llm_server: str):
    seen: list[dict] = []
    with uvicorn_thread(_recording_proxy(llm_server, seen)) as proxy_url:
        run = tmp_path_factory.mktemp("openai-stack")
        profiles = run / "profiles.yaml"
        profiles.write_text(yaml.safe_dump({
            "default_profile": "openai-compatible",
            "numbers": {NUMBER: "openai-compatible"},
            "profiles": {"openai-compatible": {
                "persona": "You are a helpful phone assistant. Answer in one short sentence.",
                "greeting": {"inbound": "Hello, this is the test agent. How can I help?"},
                "providers": "cloud", "turn_detection": "speech_timeout", "tools": [],
                # the call checks the LLM endpoint: no idle prompt may stand in for its answer (on a slow
                # start one did, and the caller hung up before the answer came)
                "idle_timeout_s": 60,
                "provider_options": {"llm": "openai", "llm_model": "local", "llm_base_url": f"{proxy_url}/v1",
                                     "max_tokens": 60, "stt": "whisper", "tts": "piper"},
            }},
        }))
        stack = Stack(StackConfig(run_dir=run, workers=1, profiles_path=profiles,
                                  redis_prefix=f"e2e-openai-{int(time.time() * 1000)}",
                                  extra_env={"VOICEBOT_MODELS_DIR": str(models_dir),
                                             "VOICEBOT_OPENAI_API_KEY": STAND_IN_KEY,
                                             "VOICEBOT_WORKER_PRELOAD_LOCAL_MODELS": "true"}))
        stack.start()
        try:
            yield stack, seen, proxy_url
        finally:
            stack.stop()


def test_cloud_profile_reaches_an_openai_compatible_llm_at_its_base_url(openai_stack, phone_for):
    stack, seen, proxy_url = openai_stack
    phone = phone_for(stack)
    sid = phone.call(NUMBER, SCRIPT)
    report = phone.wait(sid, timeout=150)
    assert report["status"] == "completed", report
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = RedisKeys(stack.config.redis_prefix)
    deadline = time.monotonic() + 20
    # the transcript is saved after every turn: the whole one once the worker has stored the call's end
    while not r.hget(keys.call(sid), "ended_at") and time.monotonic() < deadline:
        time.sleep(0.2)
    transcript = json.loads(r.get(keys.call_transcript(sid)))
    assert r.hget(keys.call(sid), "agent_profile") == "openai-compatible"
    caller = " ".join(t["text"].lower() for t in transcript if t["role"] == "user")
    # "kitchen sink": whisper tiny has heard those in every run seen; "plumber" it has heard as "a poll" under load
    assert "kitchen sink" in caller, transcript
    replies = [t for t in transcript if t["role"] == "assistant"]
    assert len(replies) >= 2 and replies[1]["text"].strip(), transcript  # greeting, then the LLM's answer
    said_end = report["said"][0]["end"]
    assert [seg for seg in report["heard"] if seg["start"] >= said_end], "the answer was spoken to the phone"

    # what reached the "OpenAI" endpoint: the OpenAI client's streamed chat completion with our key
    completions = [s for s in seen if s["path"] == "/v1/chat/completions"]
    assert completions, seen
    request = completions[-1]
    assert request["authorization"] == f"Bearer {STAND_IN_KEY}"
    assert request["body"]["model"] == "local" and request["body"]["stream"] is True
    assert any("kitchen sink" in str(m.get("content", "")).lower() for m in request["body"]["messages"])
    worker_log = (stack.config.run_dir / "logs" / "bot-worker-0.log").read_text()
    assert f"LLM openai model local at {proxy_url}/v1" in worker_log
    assert STAND_IN_KEY not in worker_log
