"""Stand-in for one service's /metrics: drives voicebot_core.metrics the way that service would.

    python metrics_driver.py ROLE PORT      ROLE: gateway | bot-worker | dialer-api | dialer-worker

Serves the real metric objects with prometheus_client on 127.0.0.1:PORT and moves them a little
every half second, so rates and quantiles have something to show. Exits on its own after
MAX_LIFETIME_S in case the test that started it dies.
"""

from __future__ import annotations

import random
import sys
import time

from prometheus_client import start_http_server

from voicebot_core import metrics

TICK_S = 0.5
MAX_LIFETIME_S = 180.0
OUTCOMES = ("completed", "busy", "no-answer", "failed", "machine", "transferred")


def tick_bot_worker(rng: random.Random) -> None:
    metrics.WORKER_CAPACITY.set(4)
    active = {"inbound": rng.randint(0, 2), "outbound": rng.randint(0, 1)}
    for direction, calls in active.items():
        metrics.ACTIVE_CALLS.labels(direction=direction).set(calls)
    metrics.WORKER_FREE_SLOTS.set(4 - sum(active.values()))
    metrics.WORKER_DRAINING.set(0)
    metrics.WORKER_HEARTBEAT.set_to_current_time()
    for direction in ("inbound", "outbound"):
        metrics.CALL_OUTCOMES.labels(direction=direction, outcome=rng.choice(OUTCOMES)).inc()
        metrics.CALL_OUTCOMES.labels(direction=direction, outcome="completed").inc()
    metrics.TURN_LATENCY.observe(rng.uniform(0.3, 1.8))
    for service in ("stt", "llm", "tts"):
        metrics.SERVICE_TTFB.labels(service=service).observe(rng.uniform(0.02, 0.6))
    metrics.INTERRUPTIONS.inc()
    metrics.BARGE_IN_PAUSES.labels(outcome=rng.choice(("resumed", "interrupted"))).inc()
    metrics.IDLE_PROMPTS.inc()
    metrics.TOOL_CALLS.labels(tool=rng.choice(("end_call", "transfer_to_human"))).inc()


def tick_gateway(rng: random.Random) -> None:
    metrics.STREAMS_ACTIVE.set(rng.randint(1, 3))
    metrics.CALL_SETUP.observe(rng.uniform(0.05, 0.4))
    metrics.REJECTED_SIGNATURES.labels(endpoint=rng.choice(("voice", "stream", "status"))).inc()
    metrics.STREAM_ERRORS.labels(reason=rng.choice(("bad_frame", "internal"))).inc()
    metrics.NO_CAPACITY.inc()
    for direction in ("inbound", "outbound"):
        metrics.FRAMES_RELAYED.labels(direction=direction).inc(25)
    metrics.FRAMES_DROPPED.labels(reason=rng.choice(("late", "malformed", "no_peer"))).inc()
    metrics.WEBHOOKS.labels(endpoint="voice", status="ok").inc()


def tick_dialer_api(rng: random.Random) -> None:
    metrics.DIAL_JOBS.labels(source=rng.choice(("api", "campaign"))).inc()


def tick_dialer_worker(rng: random.Random) -> None:
    for state in ("scheduled", "dispatched", "placing", "active"):
        metrics.DIAL_QUEUE_DEPTH.labels(state=state).set(rng.randint(0, 20))
    metrics.DIAL_QUEUE_LAG.set(rng.uniform(0, 5))
    metrics.DIAL_PLACEMENTS.labels(result="placed").inc()
    metrics.DIAL_PLACEMENTS.labels(result=rng.choice(("refused", "unreachable"))).inc()
    metrics.DIAL_RETRIES.labels(reason=rng.choice(("busy", "no-answer", "placement-error"))).inc()


ROLES = {"gateway": tick_gateway, "bot-worker": tick_bot_worker, "dialer-api": tick_dialer_api,
         "dialer-worker": tick_dialer_worker}


def main() -> None:
    role, port = sys.argv[1], int(sys.argv[2])
    tick = ROLES[role]
    rng = random.Random(f"{role}:{port}")
    tick(rng)  # values exist before the first scrape
    start_http_server(port, addr="127.0.0.1")
    print("ready", flush=True)
    started = time.monotonic()
    while time.monotonic() - started < MAX_LIFETIME_S:
        time.sleep(TICK_S)
        tick(rng)


if __name__ == "__main__":
    main()
