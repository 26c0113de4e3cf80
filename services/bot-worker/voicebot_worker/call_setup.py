"""What is decided about a call before its pipeline starts: direction, agent profile, variables, resumed history.

The stream's start message carries the call's parameters; an outbound call's dial job adds variables
and profile overrides; a call another worker was running resumes from its checkpointed history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicebot_core.calls import CallStore
from voicebot_core.dial_jobs import DialJobReader
from voicebot_core.profiles import AgentProfile, AgentProfiles, Direction
from voicebot_core.twilio_protocol import StreamStart
from voicebot_worker.settings import WorkerSettings


@dataclass
class CallSetup:
    """Everything decided before the pipeline starts."""

    start: StreamStart
    direction: Direction
    profile: AgentProfile
    variables: dict[str, str] = field(default_factory=dict)
    resumed_messages: list[dict[str, Any]] | None = None

    @property
    def call_sid(self) -> str:
        return self.start.call_sid

    def span_attributes(self, worker_id: str) -> dict[str, str]:
        """Attributes of the call's session span and of every span pipecat opens for it."""
        return {"call.sid": self.call_sid, "call.direction": self.direction, "agent.profile": self.profile.name,
                "worker.id": worker_id}


async def prepare_call(start: StreamStart, profiles: AgentProfiles, dial_jobs: DialJobReader, store: CallStore,
                       settings: WorkerSettings) -> CallSetup:
    params = start.custom_parameters
    direction: Direction = "outbound" if params.get("direction") == "outbound" else "inbound"
    our_number = params.get("from", "") if direction == "outbound" else params.get("to", "")
    profile_name = params.get("agent_profile") or profiles.for_number(our_number)
    job = await dial_jobs.get(params["dial_job_id"]) if params.get("dial_job_id") else None
    profile = profiles.get(profile_name, job.overrides if job else None)
    if settings.worker_idle_timeout_s is not None:
        profile = profile.model_copy(update={"idle_timeout_s": settings.worker_idle_timeout_s})
    resumed = await store.load_context(start.call_sid)
    return CallSetup(start=start, direction=direction, profile=profile, variables=job.variables if job else {},
                     resumed_messages=resumed or None)
