"""The real stack, traced and scraped: every dashboard panel has data and a call's spans form one tree.

Processes: emulator, gateway, two bot-workers, dialer API and Celery worker (devstack), all exporting
spans over OTLP/HTTP to the in-repo receiver, and a real Prometheus scraping every /metrics. Traffic:
an inbound call with three caller turns, an inbound call the agent ends itself (end_call tool, REST
hang-up), an outbound dial job, a dial job to a busy number (a retry, busy outcomes), a forged
webhook signature and a malformed Media Streams frame (rejected signatures, stream errors, dropped
frames).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from obs_harness import PrometheusServer, ScrapeTarget, free_port, prometheus_server, run_dashboard_queries
from otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from helpers.constants import TEST_PROFILES_PATH
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker
from voicebot_devstack.stack import Stack, StackConfig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus binary"),
]

PROFILES = TEST_PROFILES_PATH
CALLER = "+15550001111"
INBOUND = "+15557000001"       # fake-three-turns
END_CALL = "+15557000004"      # fake-end-call: the caller says goodbye, the agent's end_call tool hangs up
OUTBOUND = "+15557000006"      # fake-outbound
BUSY = "+15557000099"          # configured busy in the emulator
# Panels allowed to stay empty because this test does not cause the event they show. Every panel
# has data today: the test forges a signature, sends a malformed frame and dials a busy number.
ALLOWED_EMPTY: dict[str, str] = {}
SPAN_KIND_SERVER = 2  # OTLP's Span.SpanKind


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url, receiver) -> Iterator[Stack]:
    run_dir = tmp_path_factory.mktemp("obs-stack")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within the test, not every 5 s
    }
    config = StackConfig(run_dir=run_dir, workers=2, worker_capacity=2, profiles_path=PROFILES,
                         redis_prefix=f"obs-{int(time.time() * 1000)}", dialer=True, extra_env=env,
                         dialer_metrics_port=free_port())
    running = Stack(config)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def prom(stack, tmp_path_factory) -> Iterator[PrometheusServer]:
    def target(url_name: str, service: str, pod: str) -> ScrapeTarget:
        return ScrapeTarget(stack.urls[url_name].removeprefix("http://"), service, pod)

    targets = [
        target("gateway", "voicebot-gateway", "gateway-0"),
        target("bot-worker-0", "voicebot-bot-worker", "bot-worker-0"),
        target("bot-worker-1", "voicebot-bot-worker", "bot-worker-1"),
        target("dialer", "voicebot-dialer-api", "dialer-api-0"),
        target("dialer-worker-metrics", "voicebot-dialer-worker", "dialer-worker-0"),
    ]
    with prometheus_server(targets, tmp_path_factory.mktemp("prometheus")) as server:
        server.wait_for_samples(samples=2, timeout=30)
        yield server


@dataclass(frozen=True)
class Traffic:
    """What the module's traffic produced: the call SIDs and dial jobs to look spans up by."""

    inbound_sid: str
    end_call_sid: str
    outbound_job: dict
    busy_job: dict


def _dial(api: httpx.Client, to: str, **options) -> str:
    body = {"to": to, "agent_profile": "fake-outbound", "variables": {"name": "Sam"},
            "machine_detection": "none", **options}
    response = api.post("/v1/calls", json=body, headers={"Idempotency-Key": f"obs-{to}-{time.time()}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _wait_job(api: httpx.Client, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = api.get(f"/v1/calls/{job_id}").json()
        if job["state"] in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.5)
    raise TimeoutError(f"dial job {job_id} did not finish: {job}")


def _inbound_call(emulator: httpx.Client, to: str, script: str) -> str:
    response = emulator.post("/emulator/calls", json={"from": CALLER, "to": to, "script": script})
    response.raise_for_status()
    sid = response.json()["call_sid"]
    emulator.get(f"/emulator/calls/{sid}/wait", params={"timeout": 90}, timeout=100).raise_for_status()
    report = emulator.get(f"/emulator/calls/{sid}").raise_for_status().json()
    assert report["heard"], report
    return sid


def _forge_signature(stack: Stack) -> None:
    """A webhook whose signature does not match: voicebot_rejected_signatures_total{endpoint="voice"}."""
    response = httpx.post(f"{stack.urls['gateway']}/twilio/voice", data={"CallSid": "CA" + "f" * 32},
                          headers={SIGNATURE_HEADER: "Zm9yZ2Vk"}, timeout=10)
    assert response.status_code == 403, response.text


def _malformed_frame(stack: Stack) -> None:
    """A correctly signed stream whose first frame is not JSON: a stream error and a dropped frame."""
    url = stack.urls["gateway"].replace("http://", "ws://") + "/twilio/stream/CA" + "e" * 32
    signature = SignatureChecker(stack.auth_token).sign(url, {})
    with connect(url, additional_headers={SIGNATURE_HEADER: signature}, open_timeout=10) as ws:
        ws.send("this is not a Media Streams frame")
        with pytest.raises(ConnectionClosed):  # the gateway closes the stream (policy violation)
            ws.recv(timeout=10)


@pytest.fixture(scope="module")
def traffic(stack, prom) -> Traffic:
    with (httpx.Client(base_url=stack.urls["emulator"], timeout=30) as emulator,
          httpx.Client(base_url=stack.urls["dialer"], timeout=30,
                       headers={"Authorization": f"Bearer {stack.api_key}"}) as api):
        emulator.post("/emulator/numbers", json={BUSY: {"answer": "busy"}}).raise_for_status()
        _forge_signature(stack)
        _malformed_frame(stack)
        with ThreadPoolExecutor(max_workers=4) as pool:
            inbound = pool.submit(_inbound_call, emulator, INBOUND, "three-turns")
            end_call = pool.submit(_inbound_call, emulator, END_CALL, "end-call")
            outbound_id = _dial(api, OUTBOUND)
            busy_id = _dial(api, BUSY, max_attempts=2, retry={"initial_delay_s": 0})
            outbound = pool.submit(_wait_job, api, outbound_id)
            busy = pool.submit(_wait_job, api, busy_id)
            result = Traffic(inbound.result(), end_call.result(), outbound.result(), busy.result())
    assert result.outbound_job["state"] == "completed", result.outbound_job
    assert (result.busy_job["state"], result.busy_job["outcome"]) == ("failed", "busy"), result.busy_job
    return result


# ------------------------------------------------------------------ metrics
def test_every_dashboard_panel_has_data(prom, traffic):
    # Let Prometheus scrape the end-of-call counters, and the dispatcher refresh the queue gauges.
    time.sleep(4)
    # $__rate_interval spanning the whole test: counters that first appeared mid-test still count.
    problems = run_dashboard_queries(prom, rate_interval="5m")
    assert problems["errors"] == []
    unexplained = [panel for panel in problems["empty"] + problems["nan"]
                   if not any(f" / {title} / " in panel for title in ALLOWED_EMPTY)]
    assert unexplained == [], f"panels without data: {unexplained}"


def test_every_service_is_scraped(prom, traffic):
    health = prom.target_health()
    assert len(health) == 5 and all(t["health"] == "up" for t in health), health
    outcomes = prom.query('sum by (direction, outcome) (voicebot_call_outcomes_total{namespace="voicebot"})')
    seen = {(s["metric"]["direction"], s["metric"]["outcome"]): float(s["value"][1]) for s in outcomes}
    assert seen.get(("inbound", "completed"), 0) >= 1, seen
    assert seen.get(("outbound", "completed"), 0) >= 1, seen
    assert seen.get(("outbound", "busy"), 0) == 2, seen  # counted by the dialer, once per attempt
    placed = prom.query('sum(voicebot_dial_placements_total{result="placed", service="voicebot-dialer-worker"})')
    assert float(placed[0]["value"][1]) == 3  # outbound + two busy attempts, in the threads-pool worker


# ------------------------------------------------------------------ traces
def _one(spans: list[ReceivedSpan], name: str, **attributes) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, f"{name} {attributes}: {[(s.service, s.name, s.attributes) for s in found]}"
    return found[0]


def _trace(spans: list[ReceivedSpan], trace_id: str) -> str:
    """service, name, span id <- parent id of each span of one trace, for failure messages."""
    return "\n".join(f"{s.service} {s.name} {s.span_id} <- {s.parent_span_id or '-'}"
                     for s in spans if s.trace_id == trace_id)


def _request_spans_above(spans: list[ReceivedSpan], span: ReceivedSpan) -> list[ReceivedSpan]:
    """The spans above `span` up to its trace's root. FastAPI (0.165+) traces every request itself
    once a TracerProvider is installed: our webhook/API spans sit under its HTTP server span and
    its `fastapi.endpoint` span, all in the same process."""
    by_id = {s.span_id: s for s in spans if s.trace_id == span.trace_id}
    chain, current = [], span
    while current.parent_span_id:
        parent = by_id.get(current.parent_span_id)
        assert parent is not None, f"{current.name}: parent not exported; trace: {_trace(spans, span.trace_id)}"
        chain.append(parent)
        current = parent
    return chain


def _assert_starts_trace(spans: list[ReceivedSpan], span: ReceivedSpan) -> None:
    """Nothing from another process above `span`: it starts its trace (under its own request spans)."""
    above = _request_spans_above(spans, span)
    assert all(s.service == span.service for s in above), _trace(spans, span.trace_id)
    if above:
        assert above[-1].kind == SPAN_KIND_SERVER, _trace(spans, span.trace_id)


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name and s.parent_span_id == parent.span_id
            and s.trace_id == parent.trace_id]


def _conversation_tree(spans: list[ReceivedSpan], session: ReceivedSpan, min_turns: int) -> None:
    """pipecat's conversation span under call.session, turns under it, STT/LLM/TTS under turns."""
    conversations = _children(spans, session, "conversation")
    assert len(conversations) == 1, [(s.name, s.parent_span_id) for s in spans if s.trace_id == session.trace_id]
    turns = _children(spans, conversations[0], "turn")
    assert len(turns) >= min_turns, f"{len(turns)} turns"
    for service in ("stt", "llm", "tts"):
        under_turns = [s for turn in turns for s in _children(spans, turn, service)]
        assert under_turns, f"no {service} span under a turn"
        assert all(s.service == "voicebot-bot-worker" for s in under_turns)


def _session_done(sid: str):
    def done(spans: list[ReceivedSpan]) -> bool:
        names = {s.name for s in spans
                 if s.attributes.get("call.sid") == sid or s.attributes.get("conversation.id") == sid}
        return {"call.session", "conversation"} <= names
    return done


def test_inbound_call_is_one_trace(receiver, traffic):
    sid = traffic.inbound_sid
    spans = receiver.wait_for(_session_done(sid), timeout=30)
    webhook = _one(spans, "gateway.voice_webhook", **{"call.sid": sid})
    assert webhook.service == "voicebot-gateway"
    _assert_starts_trace(spans, webhook)  # Twilio sends no trace context
    tagged = [s for s in spans if s.attributes.get("call.sid") == sid]
    assert {s.trace_id for s in tagged} == {webhook.trace_id}, "the call's spans are in more than one trace"

    stream = _one(_children(spans, webhook, "gateway.stream"), "gateway.stream")
    assert stream.service == "voicebot-gateway"
    session = _one(_children(spans, webhook, "call.session"), "call.session")
    assert session.service == "voicebot-bot-worker"
    assert session.attributes["call.direction"] == "inbound"
    assert session.attributes["agent.profile"] == "fake-three-turns"
    assert session.attributes["worker.id"] in ("bot-worker-0", "bot-worker-1")
    assert session.attributes["call.outcome"] == "completed"
    _conversation_tree(spans, session, min_turns=3)  # the caller script says three things


def test_outbound_call_is_one_trace_from_the_api_to_the_bot(receiver, traffic):
    job = traffic.outbound_job
    sid = job["call_sid"]
    spans = receiver.wait_for(_session_done(sid), timeout=30)
    create = _one(spans, "dialer.create_dial_job", **{"dial_job.id": job["id"]})
    assert create.service == "voicebot-dialer-api"
    _assert_starts_trace(spans, create)

    place = _one(_children(spans, create, "dialer.place_call"), "dialer.place_call")
    assert place.service == "voicebot-dialer-worker"
    assert place.attributes["dial_job.result"] == "placed"
    twilio = _one(_children(spans, place, "twilio.create_call"), "twilio.create_call")
    assert twilio.attributes["call.sid"] == sid
    webhook = _one(_children(spans, twilio, "gateway.outbound_webhook"), "gateway.outbound_webhook")
    assert webhook.service == "voicebot-gateway"
    session = _one(_children(spans, webhook, "call.session"), "call.session")
    assert (session.service, session.attributes["call.direction"]) == ("voicebot-bot-worker", "outbound")
    assert session.attributes["call.outcome"] == "completed"
    _conversation_tree(spans, session, min_turns=2)

    tagged = [s for s in spans if s.attributes.get("call.sid") == sid or s.attributes.get("dial_job.id") == job["id"]]
    assert {s.trace_id for s in tagged} == {create.trace_id}, "the dial job's spans are in more than one trace"


def test_agent_hang_up_is_a_span_of_the_session(receiver, traffic):
    sid = traffic.end_call_sid
    spans = receiver.wait_for(_session_done(sid), timeout=30)
    webhook = _one(spans, "gateway.voice_webhook", **{"call.sid": sid})
    session = _one(_children(spans, webhook, "call.session"), "call.session")
    assert session.attributes["agent.profile"] == "fake-end-call"
    hangups = _children(spans, session, "call.hangup")  # the end_call tool's REST hang-up
    assert len(hangups) == 1, _trace(spans, session.trace_id)
    hangup = hangups[0]
    assert hangup.attributes["call.sid"] == sid
    _conversation_tree(spans, session, min_turns=1)
