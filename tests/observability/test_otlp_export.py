"""Spans exported by voicebot_core.telemetry reach a real OTLP endpoint, across processes, with
the parent/child structure of an inbound and an outbound call (the services' span names)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from obs_harness import ROOT
from otlp_receiver import Collector, OtlpReceiver, ReceivedSpan, otlp_receiver, rotel_collector

EMITTER = Path(__file__).with_name("span_emitter.py")


def _hop(service: str, parent: str | None, names: list[str], otel_env: dict[str, str]) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(otel_env, PYTHONPATH=str(ROOT / "packages" / "core"))
    done = subprocess.run([sys.executable, str(EMITTER), service, parent or "-", *names], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _http(receiver: OtlpReceiver | Collector) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint}


def _grpc(receiver: OtlpReceiver | Collector) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_INSECURE": "true"}


def _tree(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    by_name = {span.name: span for span in spans}
    assert len(by_name) == len(spans), "span names are unique in these traces"
    return by_name


def test_inbound_call_trace_gateway_to_worker():
    with otlp_receiver() as receiver:
        webhook = _hop("voicebot-gateway", None, ["gateway.voice_webhook"], _http(receiver))
        traceparent = webhook["carrier"]["traceparent"]   # -> TwiML <Parameter name="traceparent">
        _hop("voicebot-bot-worker", traceparent, ["call.session", "conversation", "turn", "tts"], _grpc(receiver))
        spans = receiver.wait_for(lambda got: len(got) >= 5)
    tree = _tree(spans)
    assert {span.trace_id for span in spans} == {tree["gateway.voice_webhook"].trace_id}
    assert tree["gateway.voice_webhook"].parent_span_id == ""
    assert tree["call.session"].parent_span_id == tree["gateway.voice_webhook"].span_id
    assert tree["conversation"].parent_span_id == tree["call.session"].span_id
    assert tree["turn"].parent_span_id == tree["conversation"].span_id
    assert tree["tts"].parent_span_id == tree["turn"].span_id
    assert tree["gateway.voice_webhook"].service == "voicebot-gateway"
    assert tree["call.session"].service == "voicebot-bot-worker"
    assert tree["gateway.voice_webhook"].via == "http" and tree["call.session"].via == "grpc"
    assert tree["call.session"].attributes == {"voicebot.hop": "voicebot-bot-worker"}


def test_outbound_call_trace_api_to_celery_to_twilio_to_worker():
    with otlp_receiver() as receiver:
        api = _hop("voicebot-dialer-api", None, ["dialer.create_dial_job"], _http(receiver))
        # -> Celery message headers
        task = _hop("voicebot-dialer-worker", api["carrier"]["traceparent"],
                    ["dialer.place_call", "twilio.create_call"], _http(receiver))
        # -> the stream's custom parameters, then the call's session on a bot-worker
        _hop("voicebot-bot-worker", task["carrier"]["traceparent"], ["call.session", "turn"], _http(receiver))
        spans = receiver.wait_for(lambda got: len(got) >= 5)
    tree = _tree(spans)
    assert len({span.trace_id for span in spans}) == 1
    assert tree["dialer.place_call"].parent_span_id == tree["dialer.create_dial_job"].span_id
    assert tree["twilio.create_call"].parent_span_id == tree["dialer.place_call"].span_id
    assert tree["call.session"].parent_span_id == tree["twilio.create_call"].span_id
    assert tree["turn"].parent_span_id == tree["call.session"].span_id
    assert {span.service for span in spans} == {"voicebot-dialer-api", "voicebot-dialer-worker",
                                                "voicebot-bot-worker"}


def test_tracing_off_when_the_otel_variables_are_unset():
    with otlp_receiver() as receiver:
        hop = _hop("voicebot-gateway", None, ["gateway.voice_webhook"], {})
        # the same hop with the variables set does export: the receiver is listening
        _hop("voicebot-gateway", None, ["gateway.voice_webhook"], _http(receiver))
        receiver.wait_for(lambda got: len(got) == 1)
    assert hop == {"tracing": False, "active": False, "carrier": {}}
    assert receiver.requests == {"http": 1, "grpc": 0}


def test_inbound_trace_through_a_real_collector(tmp_path):
    """SDK exporters -> rotel (OTLP/HTTP and OTLP/gRPC in) -> OTLP/gRPC out -> our receiver."""
    with otlp_receiver() as receiver, rotel_collector(receiver.grpc_endpoint, str(tmp_path / "rotel.log")) as rotel:
        webhook = _hop("voicebot-gateway", None, ["gateway.voice_webhook"], _http(rotel))
        _hop("voicebot-bot-worker", webhook["carrier"]["traceparent"], ["call.session", "turn"], _grpc(rotel))
        spans = receiver.wait_for(lambda got: len(got) >= 3)
    tree = _tree(spans)
    assert len({span.trace_id for span in spans}) == 1
    assert tree["call.session"].parent_span_id == tree["gateway.voice_webhook"].span_id
    assert tree["turn"].parent_span_id == tree["call.session"].span_id
    assert {span.service for span in spans} == {"voicebot-gateway", "voicebot-bot-worker"}
    assert receiver.requests["http"] == 0  # everything came through the collector's gRPC exporter
