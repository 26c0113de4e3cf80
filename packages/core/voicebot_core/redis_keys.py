"""Every Redis key the platform uses, built in one place so names stay consistent.

Domain words: call (a Twilio call, keyed by CallSid), worker (a bot-worker process),
ticket (the gateway's single-use pass to open one call's stream on one worker),
dial job (an outbound request), campaign, turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_ID = "\x00"  # stands for the id when a key family is handed to a Lua script


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "voicebot"

    def around_id(self, key_of: Callable[[str], str]) -> tuple[str, str]:
        """(head, tail) of a per-id key family, for Lua scripts that build keys of ids they
        read from Redis: the script joins head .. id .. tail instead of spelling the key."""
        head, tail = key_of(_ID).split(_ID)
        return head, tail

    # worker registry
    def workers(self) -> str:
        """Sorted set: worker id -> last heartbeat (unix seconds)."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """Hash: address, capacity, draining, started_at. Expires unless heartbeats renew it."""
        return f"{self.prefix}:worker:{worker_id}"

    def worker_calls(self, worker_id: str) -> str:
        """Set of call SIDs holding a slot on the worker (reserved or live)."""
        return f"{self.prefix}:worker:{worker_id}:calls"

    # calls
    def call(self, call_sid: str) -> str:
        """Hash: direction, from, to, agent_profile, worker_id, status, outcome, timestamps."""
        return f"{self.prefix}:call:{call_sid}"

    def call_events(self, call_sid: str) -> str:
        """List of JSON call events (status callbacks, stream lifecycle)."""
        return f"{self.prefix}:call:{call_sid}:events"

    def call_transcript(self, call_sid: str) -> str:
        """String: JSON transcript written at call end."""
        return f"{self.prefix}:call:{call_sid}:transcript"

    def call_context(self, call_sid: str) -> str:
        """String: JSON conversation history, checkpointed after every turn."""
        return f"{self.prefix}:call:{call_sid}:context"

    def call_event_stream(self) -> str:
        """Redis stream of all call events, for tailing."""
        return f"{self.prefix}:call-events"

    def calls_index(self) -> str:
        """Sorted set: call SID -> created_at."""
        return f"{self.prefix}:calls"

    # gateway -> worker streams
    def ticket(self, nonce: str) -> str:
        """String: call SID of the stream a gateway -> worker ticket opened, set by the worker when
        it takes the ticket (SET NX: a ticket is used once); expires with the ticket."""
        return f"{self.prefix}:ticket:{nonce}"

    # gateway liveness (voicebot_gateway.liveness)
    def gateways(self) -> str:
        """Sorted set: gateway id -> its last liveness beat (unix seconds)."""
        return f"{self.prefix}:gateways"

    def gateway_calls(self, gateway_id: str) -> str:
        """Set of the call SIDs whose media stream the gateway relays: marked failed if it dies."""
        return f"{self.prefix}:gateway:{gateway_id}:calls"

    # dialer
    def dial_job(self, job_id: str) -> str:
        return f"{self.prefix}:dial-job:{job_id}"

    def dial_jobs_index(self) -> str:
        return f"{self.prefix}:dial-jobs"

    def dial_job_events(self, job_id: str) -> str:
        return f"{self.prefix}:dial-job:{job_id}:events"

    def dial_schedule(self) -> str:
        """Sorted set: dial job id -> when it is due (unix seconds)."""
        return f"{self.prefix}:dial-schedule"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idempotency:{key}"

    def rate_bucket(self, scope: str) -> str:
        return f"{self.prefix}:rate:{scope}"

    def campaign(self, campaign_id: str) -> str:
        return f"{self.prefix}:campaign:{campaign_id}"

    def campaigns_index(self) -> str:
        return f"{self.prefix}:campaigns"

    def campaign_jobs(self, campaign_id: str) -> str:
        return f"{self.prefix}:campaign:{campaign_id}:jobs"

    def do_not_call(self) -> str:
        return f"{self.prefix}:do-not-call"

    def outbound_active(self) -> str:
        """Set of dial job ids whose call is ringing or live (capacity accounting)."""
        return f"{self.prefix}:outbound-active"

    # dialer placement bookkeeping (see voicebot_dialer.job_store and placement_queues)
    def dial_job_lock(self, job_id: str) -> str:
        """Short lock serialising state changes of one dial job across Celery workers."""
        return f"{self.prefix}:dial-job:{job_id}:lock"

    def dial_job_seen(self, job_id: str) -> str:
        """Set of status-callback fingerprints already applied (callbacks repeat)."""
        return f"{self.prefix}:dial-job:{job_id}:seen"

    def dial_dispatched(self) -> str:
        """Sorted set: dial job id -> lease expiry of its queued placement task."""
        return f"{self.prefix}:dial-dispatched"

    def dial_placing(self) -> str:
        """Sorted set: dial job id -> when its REST placement started (crash reconciliation)."""
        return f"{self.prefix}:dial-placing"

    def dialer_workers(self) -> str:
        """Sorted set: dialer Celery worker id -> its last liveness beat (voicebot_dialer.worker_liveness)."""
        return f"{self.prefix}:dialer-workers"

    def dial_holders(self) -> str:
        """Hash: dial job id -> the dialer worker that received its placement task (dispatched or placing)."""
        return f"{self.prefix}:dial-holders"

    def dial_event_stream(self) -> str:
        """Redis stream of every dial job event, for `voicebot calls tail`."""
        return f"{self.prefix}:dial-events"

    def webhook_due(self) -> str:
        """Sorted set: event id -> when its webhook's next attempt is due (or its claim's lease ends)."""
        return f"{self.prefix}:webhook-due"

    def webhook_deliveries(self) -> str:
        """Hash: event id -> JSON of a webhook waiting to be attempted again (url, event, retry, first_at)."""
        return f"{self.prefix}:webhook-deliveries"

    def campaign_active(self, campaign_id: str) -> str:
        """Sorted set: dial job ids of this campaign that are placing, ringing or live."""
        return f"{self.prefix}:campaign:{campaign_id}:active"

    def campaign_parked(self, campaign_id: str) -> str:
        """Set of dial job ids held back while the campaign is paused."""
        return f"{self.prefix}:campaign:{campaign_id}:parked"

    def campaign_waiting(self, campaign_id: str) -> str:
        """Sorted set: dial job ids of this campaign waiting for a free place under its cap."""
        return f"{self.prefix}:campaign:{campaign_id}:waiting"

    def campaigns_waiting(self) -> str:
        """Set of campaign ids that have jobs waiting for a free place under their cap."""
        return f"{self.prefix}:campaigns-waiting"
