"""Dialer benchmark: enqueue throughput (jobs/s) and pacing accuracy with 10,000 queued jobs.

    python bench/dialer_bench.py [--jobs 10000] [--cps 20] [--pace-seconds 15] [--api-calls 2000]

Starts its own dialer API, two Celery workers and the Twilio emulator on free ports, on a
private Redis key prefix that it deletes at the end. Needs Redis (VOICEBOT_REDIS_URL, default
redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import redis

from voicebot_devstack.processes import PYTHONPATH, free_port
from voicebot_devstack.rates import max_in_any_window

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"


class _Accept(BaseHTTPRequestHandler):
    """Stands in for the gateway's status endpoint: pacing does not depend on callbacks."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs queued for the pacing run")
    parser.add_argument("--cps", type=float, default=20.0, help="account calls-per-second limit")
    parser.add_argument("--pace-seconds", type=float, default=15.0, help="how long to measure pacing")
    parser.add_argument("--api-calls", type=int, default=2000, help="single POST /v1/calls for throughput")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per Celery worker")
    args = parser.parse_args()

    redis_url = os.environ.get("VOICEBOT_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen] = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    api_port, emulator_port = free_port(), free_port()
    # development mode: the Twilio token and webhook secret keep their built-in development defaults
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "VOICEBOT_DEV_MODE": "true",
           "VOICEBOT_REDIS_URL": redis_url, "VOICEBOT_REDIS_PREFIX": prefix,
           "VOICEBOT_DIALER_BROKER_PREFIX": f"{prefix}:celery:", "VOICEBOT_DIALER_API_KEYS": API_KEY,
           "VOICEBOT_DIALER_HOST": "127.0.0.1", "VOICEBOT_DIALER_PORT": str(api_port),
           "VOICEBOT_DIALER_METRICS_PORT": "0",
           "VOICEBOT_DIALER_REQUIRE_CAPACITY": "0", "VOICEBOT_DIALER_ACCOUNT_CPS": str(args.cps),
           "VOICEBOT_DIALER_NUMBER_CPS": str(args.cps),
           "VOICEBOT_DIALER_MAX_INFLIGHT": str(2 * args.workers * args.concurrency),
           "VOICEBOT_TWILIO_API_BASE_URL": f"http://127.0.0.1:{emulator_port}",
           "VOICEBOT_GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{receiver.server_port}",
           "VOICEBOT_LOG_LEVEL": "WARNING", "VOICEBOT_EMULATOR_RING_SECONDS": "0.2",
           "VOICEBOT_AGENT_PROFILES_PATH": "/nonexistent"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True, "cwd": ROOT}
    api_url = f"http://127.0.0.1:{api_port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "voicebot_dialer.api"], env=env, **quiet))
        procs.append(subprocess.Popen([sys.executable, "-m", "voicebot_emulator", "serve", "--port",
                                       str(emulator_port)], env=env, **quiet))
        wait_http(f"{api_url}/readyz", procs[0], "dialer API")
        wait_http(f"http://127.0.0.1:{emulator_port}/healthz", procs[1], "emulator")

        # 1. Enqueue throughput: single calls over HTTP, 8 clients in parallel.
        with httpx.Client(base_url=api_url, headers=headers, timeout=30,
                          limits=httpx.Limits(max_connections=8)) as http:
            def post(i: int) -> int:
                return http.post("/v1/calls", json={"to": f"+1415{5550000 + i}", "variables": {"n": str(i)},
                                                    "schedule_at": "2099-01-01T00:00:00+00:00"}).status_code
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(post, range(args.api_calls)))
            single_s = time.perf_counter() - started
        assert codes.count(201) == args.api_calls, f"{codes.count(201)} of {args.api_calls} accepted"
        print(f"enqueue POST /v1/calls   : {args.api_calls} jobs in {single_s:.2f} s = "
              f"{args.api_calls / single_s:,.0f} jobs/s (8 concurrent clients)")

        # 2. A campaign of --jobs contacts in one request.
        numbers = [f"+1628{5550000 + i}" for i in range(args.jobs)]
        httpx.post(f"http://127.0.0.1:{emulator_port}/emulator/numbers",
                   json={n: {"answer": "busy"} for n in numbers}, timeout=60).raise_for_status()
        body = {"name": "bench", "max_attempts": 1, "calls_per_second": 1000, "max_concurrent_calls": 10_000,
                "contacts": [{"to": n} for n in numbers]}
        started = time.perf_counter()
        response = httpx.post(f"{api_url}/v1/campaigns", json=body, headers=headers, timeout=300)
        campaign_s = time.perf_counter() - started
        response.raise_for_status()
        campaign_id = response.json()["id"]
        print(f"enqueue POST /v1/campaigns: {args.jobs} jobs in {campaign_s:.2f} s = "
              f"{args.jobs / campaign_s:,.0f} jobs/s (one request, JSON contacts)")

        # 3. Pacing: start the workers with the whole campaign queued and watch the grants.
        stream = f"{prefix}:dial-events"
        after = (client.xrevrange(stream, count=1) or [("0-0", {})])[0][0]
        for n in range(args.workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "voicebot_dialer.celery_app", "worker", "-Q", "dialer",
                 "--pool=threads", f"--concurrency={args.concurrency}", "-n", f"bench{n}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=ERROR"],
                env=env, **quiet))
        grants: list[float] = []
        create_ms: list[float] = []
        first_grant = None
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            for _, entries in client.xread({stream: after}, count=1000, block=500) or []:
                for entry_id, data in entries:
                    after = entry_id
                    event = json.loads(data["event"])
                    if event["kind"] == "placed":
                        grants.append(event["granted_at"])
                        create_ms.append(event["create_ms"])
                        if first_grant is None:
                            first_grant = time.monotonic()
                            deadline = first_grant + args.pace_seconds
        grants.sort()
        span = grants[-1] - grants[0]
        gaps = [b - a for a, b in itertools.pairwise(grants)]
        windows = [sum(1 for t in grants if s <= t < s + 1) for s in
                   [grants[0] + k for k in range(int(span))]]
        queued = client.zcard(f"{prefix}:dial-schedule") + client.zcard(f"{prefix}:dial-dispatched") \
            - args.api_calls  # the single calls above are dated 2099: not part of this queue
        print(f"pacing ({args.workers} Celery workers x {args.concurrency} threads, limit {args.cps:g}/s, "
              f"{args.jobs} queued, {queued} still waiting after the run):")
        print(f"  placed               : {len(grants)} calls in {span:.2f} s = "
              f"{(len(grants) - 1) / span:.2f} calls/s")
        print(f"  max in any 1 s window: {max_in_any_window(grants)} (limit {int(args.cps)})")
        print(f"  calls per whole second: min {min(windows)} max {max(windows)} over {len(windows)} s")
        print(f"  gap between grants   : mean {sum(gaps) / len(gaps) * 1000:.1f} ms, "
              f"max {max(gaps) * 1000:.1f} ms")
        create_ms.sort()
        print(f"  calls.create latency : median {create_ms[len(create_ms) // 2]:.0f} ms, "
              f"p95 {create_ms[int(len(create_ms) * 0.95)]:.0f} ms (twilio SDK -> emulator)")
        started = time.perf_counter()
        done = httpx.post(f"{api_url}/v1/campaigns/{campaign_id}/cancel", headers=headers, timeout=300).json()
        print(f"cancel the campaign    : {time.perf_counter() - started:.2f} s for {done['total']} jobs "
              f"-> {done['states']}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        receiver.shutdown()
        keys = list(client.scan_iter(f"{prefix}:*", count=5000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
