"""Prometheus metrics, defined once so every service uses the same names and labels.

Naming follows Prometheus conventions: `voicebot_` prefix, base units in names, `_total` on
counters, small fixed label sets (never a call SID or phone number as a label).

Every labelled metric is declared with the label values it is known to take (`_known`, the one
place each label set is written) and each of those series exists at 0 from import: a series born
at its first event makes increase() miss that event, and dashboards read "No data" until then.
A process that never counts a metric (the gateway and the dialer's placements, say) exports its
series at 0 as it already does for unlabelled metrics; dashboards and rules aggregate with sum or
max, so those zeros change no value. tests/core/test_metrics.py checks that every literal label
value the code passes to `.labels()` is in its metric's known set.

Gauges carry a `multiprocess_mode` for the one service that runs several processes, the dialer's
prefork Celery workers (prometheus_client multiprocess mode, voicebot_dialer/worker.py): the mode
says how the pool processes' values combine into one series, so no `pid` label appears.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import product
from typing import Final, TypeVar, get_args

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from voicebot_core.profiles import Direction, ToolName
from voicebot_core.vocabulary import DIAL_RETRY_REASONS, KNOWN_CALL_OUTCOMES

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

# The label values of the labelled metrics below.
CALL_DIRECTIONS: Final = get_args(Direction)
TTFB_SERVICES: Final = ("stt", "llm", "tts")
TOOL_NAMES: Final = get_args(ToolName)
SIGNED_ENDPOINTS: Final = ("voice", "outbound", "status", "amd", "stream")
STREAM_ERROR_REASONS: Final = ("bad_frame", "internal")
FRAME_DROP_REASONS: Final = ("late", "malformed", "no_peer")
WEBHOOK_RESULTS: Final = (("voice", "ok"), ("voice", "draining"), ("voice", "store_unavailable"), ("outbound", "ok"),
                          ("outbound", "store_unavailable"), ("status", "ok"), ("status", "deferred"),
                          ("amd", "ok"), ("amd", "deferred"))
DIAL_QUEUE_STATES: Final = ("scheduled", "dispatched", "placing", "active")
PLACEMENT_RESULTS: Final = ("placed", "refused", "rate-limited", "uncertain", "unreachable")
DIAL_JOB_SOURCES: Final = ("api", "campaign")

# metric -> every label-value tuple it is known to take (in its labelnames' order)
KNOWN_SERIES: dict[MetricWrapperBase, tuple[tuple[str, ...], ...]] = {}
M = TypeVar("M", bound=MetricWrapperBase)


def _known(metric: M, series: Iterable[tuple[str, ...]]) -> M:
    """Record the metric's known label values and create each of those series (at 0)."""
    KNOWN_SERIES[metric] = tuple(series)
    for values in KNOWN_SERIES[metric]:
        metric.labels(*values)
    return metric


# calls and capacity (bot-worker)
ACTIVE_CALLS = _known(Gauge("voicebot_active_calls", "Calls running a pipeline in this worker.", ["direction"],
                            multiprocess_mode="livesum"), product(CALL_DIRECTIONS))
WORKER_CAPACITY = Gauge("voicebot_worker_capacity_calls", "Concurrent calls this worker accepts.",
                        multiprocess_mode="livemax")
WORKER_FREE_SLOTS = Gauge("voicebot_worker_free_slots", "Calls this worker can still accept.",
                          multiprocess_mode="livemax")
WORKER_DRAINING = Gauge("voicebot_worker_draining", "1 while this worker refuses new calls.",
                        multiprocess_mode="livemax")
WORKER_HEARTBEAT = Gauge(
    "voicebot_worker_last_heartbeat_timestamp_seconds",
    "Unix time of this worker's last registry heartbeat written to Redis (alerts on its age).",
    multiprocess_mode="livemax",
)
CALL_OUTCOMES = _known(Counter("voicebot_call_outcomes_total", "Finished calls by outcome.", ["direction", "outcome"]),
                       product(CALL_DIRECTIONS, KNOWN_CALL_OUTCOMES))
TURN_LATENCY = Histogram(
    "voicebot_turn_latency_seconds",
    "Voice-to-voice latency: end of caller speech to first bot audio sent.",
    buckets=LATENCY_BUCKETS,
)
SERVICE_TTFB = _known(Histogram(
    "voicebot_service_ttfb_seconds", "Time to first byte of STT, LLM and TTS.", ["service"],
    buckets=TTFB_BUCKETS,
), product(TTFB_SERVICES))
RECORDING_SEGMENTS = _known(Counter(
    "voicebot_recording_segments_total", "Recording segments the worker tried to store, by result.", ["result"]),
    [("stored",), ("failed",)])
INTERRUPTIONS = Counter("voicebot_interruptions_total", "Bot utterances cut by caller speech (barge-in).")
BARGE_IN_PAUSES = _known(Counter(
    "voicebot_barge_in_pauses_total",
    "Bot speech paused at caller voice over it, by how the pause ended: resumed (a backchannel or noise: "
    "the reply went on) or interrupted (the caller took the turn).", ["outcome"]),
    [("resumed",), ("interrupted",)])
IDLE_PROMPTS = Counter("voicebot_idle_prompts_total", "Prompts played after caller silence.")
TTS_PREPARED_PHRASES = _known(Counter(
    "voicebot_tts_prepared_phrases_total",
    "Bot utterances played from audio prepared at worker start (hit) or synthesised live (miss).", ["result"]),
    [("hit",), ("miss",)])
TOOL_CALLS = _known(Counter("voicebot_tool_calls_total", "Tool calls made by the agent.", ["tool"]),
                    product(TOOL_NAMES))

# streams (gateway)
STREAMS_ACTIVE = Gauge("voicebot_gateway_streams_active", "Twilio media streams relayed by this gateway.",
                       multiprocess_mode="livesum")
CALL_SETUP = Histogram(
    "voicebot_call_setup_seconds", "Stream start to worker attached.", buckets=LATENCY_BUCKETS
)
REJECTED_SIGNATURES = _known(Counter(
    "voicebot_rejected_signatures_total", "Requests refused for a bad or missing signature.", ["endpoint"]
), product(SIGNED_ENDPOINTS))
STREAM_ERRORS = _known(Counter("voicebot_stream_errors_total", "Streams closed on an error.", ["reason"]),
                       product(STREAM_ERROR_REASONS))
NO_CAPACITY = Counter("voicebot_no_capacity_total", "Calls turned away because no worker was free.")
FRAMES_RELAYED = _known(Counter("voicebot_frames_relayed_total", "Media Streams messages relayed.", ["direction"]),
                        product(CALL_DIRECTIONS))
FRAMES_DROPPED = _known(Counter(
    "voicebot_audio_frames_dropped_total", "Audio frames dropped (late, malformed or no peer).", ["reason"]
), product(FRAME_DROP_REASONS))
WEBHOOKS = _known(Counter("voicebot_webhooks_total", "Twilio webhooks handled.", ["endpoint", "status"]),
                  WEBHOOK_RESULTS)

# dialer. The queue gauges are set by the dispatcher thread of a Celery worker's main process; its
# pool processes hold them at 0, so across processes the most recently set value is the one.
DIAL_QUEUE_DEPTH = _known(Gauge("voicebot_dial_queue_depth", "Dial jobs waiting to be placed.", ["state"],
                                multiprocess_mode="livemostrecent"), product(DIAL_QUEUE_STATES))
DIAL_QUEUE_LAG = Gauge(
    "voicebot_dial_queue_lag_seconds",
    "How long the oldest due dial job has waited past its due time (0 when none is overdue).",
    multiprocess_mode="livemostrecent",
)
DIAL_PLACEMENTS = _known(Counter("voicebot_dial_placements_total", "Calls placed through the Twilio REST API.",
                                 ["result"]), product(PLACEMENT_RESULTS))
DIAL_RETRIES = _known(Counter("voicebot_dial_retries_total", "Dial attempts scheduled again after a failure.",
                              ["reason"]), product(sorted(DIAL_RETRY_REASONS)))
EVENT_WEBHOOK_ATTEMPTS = _known(Counter(
    "voicebot_event_webhook_attempts_total", "Event webhook deliveries attempted by the dialer, by what became of "
    "the event (delivered, retry-scheduled, refused: a 4xx ends it, given-up: its retry period ran out).",
    ["result"]), [("delivered",), ("retry-scheduled",), ("refused",), ("given-up",)])
DIAL_JOBS = _known(Counter("voicebot_dial_jobs_total", "Dial jobs created.", ["source"]), product(DIAL_JOB_SOURCES))
