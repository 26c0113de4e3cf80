"""LocalOpenAILLMService turns a tool call written as text into a real function call.

A scripted OpenAI-compatible server on loopback streams the exact chunks a small local model sends
(Qwen2.5 1.5B writes `{"name": "end_call", "arguments": {}}` as content); no model is needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pipecat.tests.utils import run_test

from helpers.servers import uvicorn_thread
from voicebot_worker.providers import local_llm


class ScriptedReplies:
    """Streams the next scripted reply, split into the given chunks, as chat.completion.chunk events."""

    def __init__(self) -> None:
        self.replies: list[list[str]] = []
        self.requests: list[dict] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions", response_model=None)
        async def completions(body: dict) -> StreamingResponse | dict:
            self.requests.append(body)
            chunks = self.replies.pop(0) if self.replies else ["Okay."]
            if not body.get("stream"):
                return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "local",
                        "choices": [{"index": 0, "finish_reason": "length",
                                     "message": {"role": "assistant", "content": "".join(chunks)}}]}
            return StreamingResponse(self._events(chunks), media_type="text/event-stream")

        return app

    @staticmethod
    def _events(chunks: list[str]) -> Iterator[str]:
        def event(delta: dict, finish: str | None = None) -> str:
            payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "local",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(payload)}\n\n"

        yield event({"role": "assistant", "content": None})
        for chunk in chunks:
            yield event({"content": chunk})
        yield event({}, "stop")
        yield "data: [DONE]\n\n"


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedReplies, str]]:
    replies = ScriptedReplies()
    with uvicorn_thread(replies.app()) as base:
        yield replies, f"{base}/v1"


async def run_turn(base_url: str) -> tuple[list[str], list[str]]:
    """One LLM turn; returns (spoken text frames, names of functions that ran)."""
    llm = local_llm.build_llm(SimpleNamespace(worker_llm_base_url=base_url), {})
    calls: list[str] = []

    async def end_call(params: FunctionCallParams) -> None:
        calls.append(params.function_name)
        await params.result_callback({"ended": True})

    llm.register_function("end_call", end_call)
    context = LLMContext(messages=[{"role": "user", "content": "That's all, bye!"}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)], expected_down_frames=None)
    return [f.text for f in down if isinstance(f, LLMTextFrame)], calls


@pytest.mark.parametrize("chunks", [
    ['{"', 'name": "end', '_call", "arguments": {}}'],
    [" ", "<tool", "_call>\n", '{"name": "end_call", "arguments": {}}', "\n</tool_call>"],
    ['{{"name": "end_call", "arguments": {}}}'],
])
async def test_text_tool_call_runs_the_function_and_is_not_spoken(scripted, chunks: list[str]) -> None:
    replies, base_url = scripted
    replies.replies = [chunks, ["Goodbye!"]]
    spoken, calls = await run_turn(base_url)
    assert calls == ["end_call"]
    assert not any("name" in text or "{" in text for text in spoken), spoken


async def test_ordinary_reply_streams_unchanged(scripted) -> None:
    replies, base_url = scripted
    replies.replies = [["Sure", ", I can", " help with that."]]
    spoken, calls = await run_turn(base_url)
    assert "".join(spoken) == "Sure, I can help with that."
    assert calls == []


async def test_call_of_an_invented_function_is_neither_run_nor_spoken(scripted) -> None:
    replies, base_url = scripted
    replies.replies = [['{"name": "book_plumber", "arguments": {"tap": "kitchen"}}']]
    spoken, calls = await run_turn(base_url)
    assert calls == []
    assert spoken == []


async def test_other_json_or_a_brace_opening_is_spoken(scripted) -> None:
    replies, base_url = scripted
    replies.replies = [["{braces} are", " fine."]]
    spoken, _ = await run_turn(base_url)
    assert "".join(spoken) == "{braces} are fine."


async def test_prefill_sends_the_call_prompt_and_tools_for_one_token(scripted) -> None:
    replies, base_url = scripted
    llm = local_llm.build_llm(SimpleNamespace(worker_llm_base_url=base_url), {})
    end_call = FunctionSchema(name="end_call", description="End the call.", properties={}, required=[])
    context = LLMContext(messages=[{"role": "system", "content": "You are Robin."},
                                   {"role": "assistant", "content": "Hello, this is Robin."}],
                         tools=ToolsSchema(standard_tools=[end_call]))
    seconds = await llm.prefill(context)
    assert seconds < 10
    [request] = replies.requests
    assert request["max_tokens"] == 1 and not request.get("stream")
    assert [m["content"] for m in request["messages"]] == ["You are Robin.", "Hello, this is Robin."]
    assert [t["function"]["name"] for t in request["tools"]] == ["end_call"]
