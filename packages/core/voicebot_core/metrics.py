"""Prometheus metrics, defined once so every service uses the same names and labels.

Naming follows Prometheus conventions: `voicebot_` prefix, base units in names, `_total` on
counters, small fixed label sets (never a call SID or phone number as a label).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from voicebot_core.vocabulary import KNOWN_CALL_OUTCOMES

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

# calls and capacity (bot-worker)
ACTIVE_CALLS = Gauge("voicebot_active_calls", "Calls running a pipeline in this worker.", ["direction"])
WORKER_CAPACITY = Gauge("voicebot_worker_capacity_calls", "Concurrent calls this worker accepts.")
WORKER_FREE_SLOTS = Gauge("voicebot_worker_free_slots", "Calls this worker can still accept.")
WORKER_DRAINING = Gauge("voicebot_worker_draining", "1 while this worker refuses new calls.")
WORKER_HEARTBEAT = Gauge(
    "voicebot_worker_last_heartbeat_timestamp_seconds",
    "Unix time of this worker's last registry heartbeat written to Redis (alerts on its age).",
)
CALL_OUTCOMES = Counter("voicebot_call_outcomes_total", "Finished calls by outcome.", ["direction", "outcome"])
# Every known series exists at 0 from start-up: a series born at its first call would make
# increase() miss that call (and dashboards read "No data" until the second one).
for _direction in ("inbound", "outbound"):
    for _outcome in KNOWN_CALL_OUTCOMES:
        CALL_OUTCOMES.labels(direction=_direction, outcome=_outcome)
TURN_LATENCY = Histogram(
    "voicebot_turn_latency_seconds",
    "Voice-to-voice latency: end of caller speech to first bot audio sent.",
    buckets=LATENCY_BUCKETS,
)
SERVICE_TTFB = Histogram(
    "voicebot_service_ttfb_seconds", "Time to first byte of STT, LLM and TTS.", ["service"],
    buckets=TTFB_BUCKETS,
)
INTERRUPTIONS = Counter("voicebot_interruptions_total", "Bot utterances cut by caller speech (barge-in).")
IDLE_PROMPTS = Counter("voicebot_idle_prompts_total", "Prompts played after caller silence.")
TOOL_CALLS = Counter("voicebot_tool_calls_total", "Tool calls made by the agent.", ["tool"])

# streams (gateway)
STREAMS_ACTIVE = Gauge("voicebot_gateway_streams_active", "Twilio media streams relayed by this gateway.")
CALL_SETUP = Histogram(
    "voicebot_call_setup_seconds", "Stream start to worker attached.", buckets=LATENCY_BUCKETS
)
REJECTED_SIGNATURES = Counter(
    "voicebot_rejected_signatures_total", "Requests refused for a bad or missing signature.", ["endpoint"]
)
STREAM_ERRORS = Counter("voicebot_stream_errors_total", "Streams closed on an error.", ["reason"])
NO_CAPACITY = Counter("voicebot_no_capacity_total", "Calls turned away because no worker was free.")
FRAMES_RELAYED = Counter("voicebot_frames_relayed_total", "Media Streams messages relayed.", ["direction"])
FRAMES_DROPPED = Counter(
    "voicebot_audio_frames_dropped_total", "Audio frames dropped (late, malformed or no peer).", ["reason"]
)
WEBHOOKS = Counter("voicebot_webhooks_total", "Twilio webhooks handled.", ["endpoint", "status"])

# dialer
DIAL_QUEUE_DEPTH = Gauge("voicebot_dial_queue_depth", "Dial jobs waiting to be placed.", ["state"])
DIAL_QUEUE_LAG = Gauge(
    "voicebot_dial_queue_lag_seconds",
    "How long the oldest due dial job has waited past its due time (0 when none is overdue).",
)
DIAL_PLACEMENTS = Counter("voicebot_dial_placements_total", "Calls placed through the Twilio REST API.",
                          ["result"])
DIAL_RETRIES = Counter("voicebot_dial_retries_total", "Dial attempts scheduled again after a failure.",
                       ["reason"])
DIAL_JOBS = Counter("voicebot_dial_jobs_total", "Dial jobs created.", ["source"])
