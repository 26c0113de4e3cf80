"""The dialer's shared parts, built once by `DialerService` and handed whole to each piece of
work (dispatch, placement, callbacks, cancellation, reconciliation)."""

from __future__ import annotations

from dataclasses import dataclass

from voicebot_dialer.campaign_store import CampaignStore
from voicebot_dialer.capacity import CapacityGate
from voicebot_dialer.do_not_call import DoNotCallList
from voicebot_dialer.job_store import JobStore
from voicebot_dialer.lifecycle import Lifecycle
from voicebot_dialer.placement_queues import PlacementQueues
from voicebot_dialer.settings import DialerSettings
from voicebot_dialer.twilio_calls import TwilioCalls
from voicebot_dialer.worker_liveness import WorkerLiveness


@dataclass(frozen=True)
class DialerParts:
    settings: DialerSettings
    jobs: JobStore
    campaigns: CampaignStore
    do_not_call: DoNotCallList
    queues: PlacementQueues
    capacity: CapacityGate  # bot-worker slots and campaign caps
    lifecycle: Lifecycle  # every state change of a job goes through it
    calls: TwilioCalls
    liveness: WorkerLiveness  # which dialer workers are alive, which jobs each holds
