"""The tools an agent profile may give the LLM: end the call, transfer to a human (both via call control)."""

from __future__ import annotations

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.frames.frames import FunctionCallResultProperties
from pipecat.services.llm_service import FunctionCallParams, LLMService

from voicebot_core import metrics
from voicebot_core.profiles import AgentProfile
from voicebot_worker.call_control import CallControl

END_CALL = FunctionSchema(
    name="end_call", description="Say goodbye and hang up, when the caller is done or asks to end the call.",
    properties={}, required=[])
TRANSFER_TO_HUMAN = FunctionSchema(
    name="transfer_to_human", description="Transfer the caller to a human agent, when they ask for a person or "
    "you cannot help.", properties={}, required=[])


class CallTools:
    def __init__(self, profile: AgentProfile, control: CallControl) -> None:
        self._profile = profile
        self._control = control

    def register(self, llm: LLMService) -> list[FunctionSchema]:
        """Register the profile's tools with the LLM service; returns their schemas for the context."""
        schemas: list[FunctionSchema] = []
        for schema, handler in ((END_CALL, self._end_call), (TRANSFER_TO_HUMAN, self._transfer_to_human)):
            if schema.name in self._profile.tools:
                llm.register_function(schema.name, handler)
                schemas.append(schema)
        return schemas

    async def _end_call(self, params: FunctionCallParams) -> None:
        metrics.TOOL_CALLS.labels(tool="end_call").inc()
        await params.result_callback({"status": "ending the call"},
                                     properties=FunctionCallResultProperties(run_llm=False))
        self._control.end_call(self._profile.goodbye, "end_call")

    async def _transfer_to_human(self, params: FunctionCallParams) -> None:
        metrics.TOOL_CALLS.labels(tool="transfer_to_human").inc()
        refusal = self._control.transfer_refusal()
        if refusal is not None:  # no target, or one refused (logged): the call goes on, the LLM is told
            await params.result_callback({"error": refusal})
            return
        await params.result_callback({"status": "transferring"},
                                     properties=FunctionCallResultProperties(run_llm=False))
        self._control.transfer()
