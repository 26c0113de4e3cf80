"""pipecat 1.14's own conversation/turn spans hang under our call.session span.

PipelineWorker(enable_tracing=True) starts its "conversation" span from the current context when
the StartFrame passes; running the WorkerRunner inside telemetry.span(...) is all it takes.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voicebot_core import telemetry


class PassThrough(FrameProcessor):
    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


async def test_pipecat_turn_spans_are_children_of_the_session_span(spans):
    remote_parent = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    with telemetry.span("call.session", parent=remote_parent, attrs={"call.sid": "CA7"}) as session:
        worker = PipelineWorker(Pipeline([PassThrough()]), enable_tracing=True, enable_rtvi=False,
                                conversation_id="CA7", additional_span_attributes={"call.sid": "CA7"})
        # one caller turn answered by the bot, then a barge-in turn
        for frame in (UserStartedSpeakingFrame(), UserStoppedSpeakingFrame(), BotStartedSpeakingFrame(),
                      BotStoppedSpeakingFrame(), UserStartedSpeakingFrame(), UserStoppedSpeakingFrame(),
                      EndFrame()):
            await worker.queue_frame(frame)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.wait_for(runner.run(), timeout=30)

    finished = spans.get_finished_spans()
    by_name: dict[str, list] = {}
    for item in finished:
        by_name.setdefault(item.name, []).append(item)
    (conversation,) = by_name["conversation"]
    turns = by_name["turn"]
    session_id = session.get_span_context().span_id
    assert conversation.parent.span_id == session_id
    assert conversation.attributes["conversation.id"] == "CA7"
    assert conversation.attributes["call.sid"] == "CA7"
    assert len(turns) >= 1
    assert all(turn.parent.span_id == conversation.context.span_id for turn in turns)
    assert {item.context.trace_id for item in finished} == {0x4bf92f3577b34da6a3ce929d0e0e4736}
