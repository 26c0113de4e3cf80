"""Tracing: one OpenTelemetry setup for every service, W3C trace context across process hops.

Off unless the standard OTEL_* variables ask for it: with neither OTEL_TRACES_EXPORTER nor an
OTLP endpoint set, `setup_tracing` installs nothing and every span below is the API's no-op span.
A call's trace crosses processes as a W3C `traceparent` string, carried in whatever the hop
offers: HTTP headers, Celery message headers, or a TwiML <Parameter> that comes back in the
Media Streams `start` message's customParameters.

Span attributes must never hold a phone number; use call.sid, call.direction, agent profile names.
pipecat's spans do carry conversation content (transcripts, TTS text, LLM messages): before
export, phone numbers in string attributes are masked like in the logs, or content attributes
are dropped altogether (VOICEBOT_TRACE_CONTENT=masked|none|full, default masked).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACER_NAME = "voicebot"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# W3C trace context only: the keys are fixed, so they fit a TwiML <Parameter> and Celery headers.
_PROPAGATOR = TraceContextTextMapPropagator()


# Identifiers that look like digit runs but are not phone numbers: never masked.
_UNMASKED_KEYS = frozenset({"call.sid", "conversation.id", "dial_job.id", "worker.id", "stream.sid"})
# Attributes where pipecat puts what was said or generated.
CONTENT_KEYS = frozenset({"transcript", "text", "input", "output", "gen_ai.prompt", "gen_ai.completion",
                          "system_instruction", "tools.definitions"})
CONTENT_MODES = ("masked", "none", "full")


class ContentFilterExporter:
    """Wraps a SpanExporter: masks phone numbers in string attributes ("masked") or also drops
    the conversation-content attributes ("none") before the spans leave the process."""

    def __init__(self, inner: Any, mode: str = "masked") -> None:
        if mode not in CONTENT_MODES:
            raise ValueError(f"unsupported trace content mode {mode!r}: use one of {CONTENT_MODES}")
        self._inner = inner
        self._mode = mode

    def _attributes(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        from voicebot_core.logs import mask_phone

        cleaned: dict[str, Any] = {}
        for key, value in attributes.items():
            if self._mode == "none" and key in CONTENT_KEYS:
                continue
            if isinstance(value, str) and key not in _UNMASKED_KEYS:
                value = mask_phone(value)
            elif isinstance(value, (list, tuple)) and key not in _UNMASKED_KEYS:
                value = tuple(mask_phone(item) if isinstance(item, str) else item for item in value)
            cleaned[key] = value
        return cleaned

    def _clean(self, span: Any) -> Any:
        from opentelemetry.sdk.trace import ReadableSpan

        return ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=span.resource,
            attributes=self._attributes(span.attributes or {}), events=span.events, links=span.links,
            kind=span.kind, status=span.status, start_time=span.start_time, end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Any) -> Any:
        if self._mode != "full":
            spans = [self._clean(span) for span in spans]
        return self._inner.export(spans)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


# ------------------------------------------------------------------ setup
def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    """True when the OTEL_* variables ask for traces to be exported."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def otlp_protocol(env: Mapping[str, str] | None = None) -> str:
    """`grpc` or `http/protobuf` (the OTLP specification's default)."""
    env = os.environ if env is None else env
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = (protocol or "http/protobuf").strip().lower()
    if protocol not in ("grpc", "http/protobuf"):
        raise ValueError(f"unsupported OTLP protocol {protocol!r}: use grpc or http/protobuf")
    return protocol


def build_exporter(env: Mapping[str, str] | None = None) -> Any:
    """The span exporter the OTEL_* variables name; the exporters read their own endpoint variables."""
    env = os.environ if env is None else env
    kind = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ValueError(f"unsupported OTEL_TRACES_EXPORTER {kind!r}: use otlp, console or none")
    if otlp_protocol(env) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError as exc:  # the images leave it out (packages/core/pyproject.toml, otlp-grpc)
            raise ValueError("OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc, which this image does "
                             "not install: set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf") from exc

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def setup_tracing(service_name: str, *, exporter: Any = None, set_global: bool = True,
                  content: str | None = None) -> Any:
    """Install a TracerProvider exporting this service's spans; None (and nothing installed) when off.

    `exporter` overrides the OTEL_* choice (tests pass an InMemorySpanExporter, exported
    synchronously). `content` is the trace content mode (default: VOICEBOT_TRACE_CONTENT, else
    "masked"). Call once per process, after any fork: Celery prefork children call it from
    `worker_process_init`, because the batch exporter's thread does not survive a fork.
    """
    if exporter is None and not tracing_requested():
        return None
    content = content or os.environ.get("VOICEBOT_TRACE_CONTENT", "").strip().lower() or "masked"
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME wins over our default.
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(ContentFilterExporter(exporter, content)))
    else:
        provider.add_span_processor(BatchSpanProcessor(ContentFilterExporter(build_exporter(), content)))
    if set_global:
        trace.set_tracer_provider(provider)
    log.info("tracing on", extra={"otel_service": name})
    return provider


def tracing_active() -> bool:
    """True when an SDK TracerProvider is installed globally, i.e. spans are really recorded.

    The bot-worker passes this as PipelineWorker(enable_tracing=...) so pipecat does no tracing
    work at all in an untraced deployment.
    """
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover - the SDK is in requirements.lock
        return False
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def shutdown_tracing(provider: Any) -> None:
    """Flush and stop `provider` (from setup_tracing); a no-op for None."""
    if provider is not None:
        provider.force_flush()
        provider.shutdown()


# ------------------------------------------------------------------ propagation
def inject_context(carrier: MutableMapping[str, str] | None = None,
                   context: Context | None = None) -> dict[str, str] | MutableMapping[str, str]:
    """Write `traceparent` (and `tracestate` when set) of the current span into `carrier`.

    Returns the carrier (a new dict when none is given); nothing is written outside a recording
    span, so an untraced deployment sends no extra parameters.
    """
    carrier = {} if carrier is None else carrier
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def extract_context(carrier: Mapping[str, Any] | None) -> Context | None:
    """The remote parent carried in `carrier`, or None when it holds no valid traceparent."""
    if not carrier:
        return None
    values = {key: str(carrier[key]) for key in (TRACEPARENT, TRACESTATE) if carrier.get(key)}
    if TRACEPARENT not in values:
        return None
    context = _PROPAGATOR.extract(values)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def request_parent(headers: Mapping[str, str]) -> Mapping[str, str] | None:
    """Parent for a handler's span: the framework's own request span when one is recording
    (it already continued the caller's trace), else the request's traceparent header."""
    return None if trace.get_current_span().is_recording() else dict(headers)


def current_traceparent() -> str | None:
    """The current span as a W3C traceparent string (None outside a recording span)."""
    return inject_context().get(TRACEPARENT)


def trace_carrier(source: Any) -> dict[str, str]:
    """traceparent/tracestate from a Celery task request (custom headers or attributes) or a mapping."""
    found: dict[str, str] = {}
    headers = getattr(source, "headers", None)
    for key in (TRACEPARENT, TRACESTATE):
        value = None
        if isinstance(source, Mapping):
            value = source.get(key)
        if value is None and isinstance(headers, Mapping):
            value = headers.get(key)
        if value is None and not isinstance(source, Mapping):
            value = getattr(source, key, None)
        if value:
            found[key] = str(value)
    return found


# ------------------------------------------------------------------ spans
@contextmanager
def span(name: str, *, parent: Context | Mapping[str, Any] | None = None, kind: SpanKind = SpanKind.INTERNAL,
         attrs: Mapping[str, Any] | None = None, **attributes: Any) -> Iterator[trace.Span]:
    """Run the block in a new current span, a child of `parent` when given, else of the current span.

    `parent` is either an OpenTelemetry Context or a carrier holding a traceparent (TwiML custom
    parameters, Celery headers, HTTP headers). Dotted attribute names go in `attrs`
    ({"call.sid": sid}), plain ones as keywords; values of None are left out. Exceptions are
    recorded on the span and re-raised.
    """
    # a Context is itself a Mapping: only plain carriers go through extraction
    context = parent if isinstance(parent, Context) or parent is None else extract_context(parent)
    clean = {key: value for key, value in {**(attrs or {}), **attributes}.items() if value is not None}
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, context=context, kind=kind, attributes=clean) as current:
        yield current
