"""voicebot_core.telemetry: off when unset, traceparent across hops, trace_id in JSON logs."""

from __future__ import annotations

import io
import json
import logging
import sys
from types import SimpleNamespace

import pytest
from opentelemetry import trace

from voicebot_core import logs, telemetry


# ------------------------------------------------------------------ off cleanly when unset
@pytest.mark.parametrize("env, wanted", [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
])
def test_tracing_requested_follows_the_otel_variables(env, wanted):
    assert telemetry.tracing_requested(env) is wanted


def test_setup_tracing_installs_nothing_when_unset(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
                 "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    before = trace.get_tracer_provider()
    assert telemetry.setup_tracing("gateway") is None
    assert trace.get_tracer_provider() is before


def test_tracing_active_once_a_provider_is_installed(spans):
    # the `spans` fixture installed (or found) the process's SDK provider
    assert telemetry.tracing_active()


def test_exporter_follows_the_protocol_variable():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    assert isinstance(telemetry.build_exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}), Grpc)
    assert isinstance(telemetry.build_exporter({}), Http)
    assert isinstance(telemetry.build_exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}), Http)
    with pytest.raises(ValueError):
        telemetry.build_exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_grpc_without_its_exporter_installed_names_the_fix(monkeypatch):
    # the images leave the gRPC exporter out (packages/core/pyproject.toml, otlp-grpc)
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"):
        telemetry.build_exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


# ------------------------------------------------------------------ propagation
def test_no_traceparent_outside_a_span(spans):
    assert telemetry.inject_context() == {}
    assert telemetry.current_traceparent() is None
    assert telemetry.extract_context({}) is None
    assert telemetry.extract_context({"traceparent": "garbage"}) is None


def test_traceparent_links_a_remote_child_to_its_parent(spans):
    with telemetry.span("gateway.webhook", attrs={"call.sid": "CA1"}, endpoint="voice") as webhook:
        # what the gateway would put into <Parameter name="traceparent" value="...">
        parameters = telemetry.inject_context({"direction": "inbound"})
    assert parameters["direction"] == "inbound"
    trace_id = webhook.get_span_context().trace_id
    # flags: sampled, plus the random-trace-id bit newer SDKs set
    assert parameters["traceparent"].startswith(f"00-{trace_id:032x}-{webhook.get_span_context().span_id:016x}-")

    # the worker, another process: the stream's customParameters as the parent
    with (telemetry.span("call.session", parent=parameters, attrs={"call.direction": "inbound"}),
          telemetry.span("turn")):
        pass

    finished = {s.name: s for s in spans.get_finished_spans()}
    assert set(finished) == {"gateway.webhook", "call.session", "turn"}
    session, turn = finished["call.session"], finished["turn"]
    assert session.context.trace_id == trace_id
    assert session.parent.span_id == webhook.get_span_context().span_id
    assert session.parent.is_remote
    assert turn.parent.span_id == session.context.span_id
    assert finished["gateway.webhook"].attributes == {"call.sid": "CA1", "endpoint": "voice"}
    assert dict(session.attributes) == {"call.direction": "inbound"}


def test_celery_request_carrier_from_headers_or_attributes(spans):
    with telemetry.span("dialer.api.create_job") as api:
        headers = telemetry.inject_context()
    traceparent = headers["traceparent"]
    from_headers = SimpleNamespace(headers={"traceparent": traceparent}, id="task-1")
    from_attributes = SimpleNamespace(headers=None, traceparent=traceparent)
    assert telemetry.trace_carrier(from_headers) == {"traceparent": traceparent}
    assert telemetry.trace_carrier(from_attributes) == {"traceparent": traceparent}
    assert telemetry.trace_carrier({"traceparent": traceparent, "other": "x"}) == {"traceparent": traceparent}
    assert telemetry.trace_carrier(SimpleNamespace(headers=None)) == {}

    with telemetry.span("dialer.place_call", parent=telemetry.trace_carrier(from_headers)) as task:
        pass
    assert task.parent.span_id == api.get_span_context().span_id
    assert task.get_span_context().trace_id == api.get_span_context().trace_id


def test_span_records_the_error_and_reraises(spans):
    with pytest.raises(RuntimeError), telemetry.span("twilio.create_call"):
        raise RuntimeError("refused")
    (failed,) = spans.get_finished_spans()
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]


# ------------------------------------------------------------------ logs
def test_json_logs_carry_the_trace_id_inside_a_span(spans):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("bot-worker"))
    logger = logging.getLogger("test.observability.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        with telemetry.span("call.session") as session:
            logger.warning("caller +15551234567 said hi", extra={"call_sid": "CA42"})
    finally:
        logger.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "trace_id" not in outside
    assert inside["trace_id"] == f"{session.get_span_context().trace_id:032x}"
    assert inside["call_sid"] == "CA42"
    assert "+15551234567" not in inside["msg"]


# ------------------------------------------------------------------ conversation content
def test_exported_spans_have_phone_numbers_masked_by_default(spans):
    with telemetry.span("stt", attrs={"transcript": "call me back on +1 555 123 4567 please",
                                      "call.sid": "CA0123456789abcdef0123456789abcdef"}):
        pass
    (stt,) = spans.get_finished_spans()
    assert stt.attributes["transcript"].startswith("call me back on +1 55***")
    assert "123 4567" not in stt.attributes["transcript"]
    assert stt.attributes["call.sid"] == "CA0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("mode, expected", [
    ("masked", {"transcript": "my number is +1555***4567", "llm.model": "fake"}),
    ("none", {"llm.model": "fake"}),
    ("full", {"transcript": "my number is +15551234567", "llm.model": "fake"}),
])
def test_trace_content_modes(mode, expected):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # local, not the global one
    provider.add_span_processor(SimpleSpanProcessor(telemetry.ContentFilterExporter(exporter, mode)))
    with provider.get_tracer("test").start_as_current_span(
            "llm", attributes={"transcript": "my number is +15551234567", "llm.model": "fake"}):
        pass
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes) == expected
    with pytest.raises(ValueError):
        telemetry.ContentFilterExporter(exporter, "everything")
