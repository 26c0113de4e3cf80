"""The local LLM's client: pipecat's OpenAI service against `python -m voicebot_worker.llm_server`.

Small models sometimes write a tool call as text; `LocalOpenAILLMService` runs it as a call instead
of letting the TTS read the JSON aloud. provider_options: llm_model (name sent to the server, default
"local"), temperature (default 0.3), max_tokens (default 150).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from typing import Any

from pipecat.frames.frames import FunctionCallFromLLM
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import LLMService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.utils.types import assert_given

logger = logging.getLogger(__name__)

DEFAULT_LLM_BASE_URL = "http://127.0.0.1:8000/v1"


def llm_base_url(settings: Any = None) -> str:
    return (getattr(settings, "worker_llm_base_url", None) or os.environ.get("VOICEBOT_WORKER_LLM_BASE_URL")
            or DEFAULT_LLM_BASE_URL)


class LocalOpenAILLMService(OpenAILLMService):
    """OpenAILLMService that also recognises tool calls a small model writes as plain text.

    Qwen2.5 1.5B answers "transfer me to a person" with the text `{"name": "transfer_to_human",
    "arguments": {}}` (sometimes inside <tool_call> tags, sometimes with doubled braces) instead of a
    structured tool call, and the TTS would read that JSON aloud. A reply that starts like JSON is
    held back; a call of a registered function runs as one, a call of any other function is dropped
    (logged), and anything else is spoken.
    """

    _JSON_START = ("{", "<tool_call>")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held_text: str | None = None  # None: not decided yet for this reply
        self._holding = False

    async def prefill(self, context: LLMContext) -> float:
        """Process this call's prompt (system prompt, tools, greeting) now, e.g. while the greeting
        plays: llama.cpp keeps it in its prompt cache, so the first caller turn only pays for its own
        words. Without it, a ~300-token prompt with tools costs seconds on 2 cores. Returns seconds."""
        started = time.monotonic()
        try:
            invocation = await self.get_llm_adapter().get_llm_invocation_params(
                context, system_instruction=assert_given(self._settings.system_instruction),
                convert_developer_to_user=not self.supports_developer_role)
            params = self.build_chat_completion_params(invocation)
            params.pop("stream_options", None)
            params.pop("max_completion_tokens", None)  # one unambiguous limit: max_tokens
            params.update(stream=False, max_tokens=1)
            await self._client.chat.completions.create(**params)
        except Exception as exc:  # an unreachable server shows up on the first turn anyway
            logger.warning("local LLM prompt prefill failed: %s", exc)
        return time.monotonic() - started

    async def _process_context(self, context: LLMContext) -> None:
        self._held_text, self._holding = "", False
        try:
            await super()._process_context(context)
        finally:
            held, self._held_text, self._holding = self._held_text, None, False
        if not held:
            return
        call = self._text_tool_call(held)
        if call is None:
            await super()._push_llm_text(held)
        elif call[0] in self._functions:
            await self.run_function_calls([FunctionCallFromLLM(
                function_name=call[0], tool_call_id=f"call_{uuid.uuid4().hex[:24]}", arguments=call[1],
                context=context)])
        else:
            # Small models invent tools ("book_plumber"); reading that JSON aloud is worse than silence.
            logger.warning("local LLM wrote a call of unknown function %r as text; not speaking it", call[0])

    async def _push_llm_text(self, text: str) -> None:
        if self._held_text is None:
            await super()._push_llm_text(text)
            return
        if self._holding:
            self._held_text += text
            return
        pending = self._held_text + text
        stripped = pending.lstrip()
        if not stripped or any(start.startswith(stripped) for start in self._JSON_START):
            self._held_text = pending  # whitespace, or a prefix of "<tool_call>": undecided
        elif any(stripped.startswith(start) for start in self._JSON_START):
            self._held_text, self._holding = pending, True
        else:
            self._held_text = None  # ordinary speech: stream it from here on
            await super()._push_llm_text(pending)

    @staticmethod
    def _text_tool_call(text: str) -> tuple[str, dict[str, Any]] | None:
        """(name, arguments) when the text is one tool call written as JSON, else None."""
        body = text.strip().removeprefix("<tool_call>").removesuffix("</tool_call>").strip()
        for candidate in (body, body[1:-1] if body.startswith("{{") and body.endswith("}}") else None):
            if not candidate:
                continue
            try:
                parsed = json.loads(candidate)
            except ValueError:
                continue
            if (isinstance(parsed, dict) and isinstance(parsed.get("name"), str)
                    and isinstance(parsed.get("arguments", {}), dict)):
                return parsed["name"], dict(parsed.get("arguments") or {})
        return None


def build_llm(settings: Any, options: dict[str, Any]) -> LLMService:
    return LocalOpenAILLMService(
        api_key="local-llm-needs-no-key",
        base_url=llm_base_url(settings),
        settings=OpenAILLMService.Settings(
            model=str(options.get("llm_model", "local")),
            temperature=float(options.get("temperature", 0.3)),
            max_tokens=int(options.get("max_tokens", 150)),
        ),
    )
