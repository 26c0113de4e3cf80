"""Fixtures for the observability tests: spans captured in memory from the global provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from voicebot_core import telemetry

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def _global_provider() -> TracerProvider:
    """The process's one global TracerProvider (OpenTelemetry refuses to replace it)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        # Another suite installed one first: listen on it instead.
        provider.add_span_processor(SimpleSpanProcessor(telemetry.ContentFilterExporter(_EXPORTER)))
        return provider
    installed = telemetry.setup_tracing("voicebot-tests", exporter=_EXPORTER)
    assert installed is not None
    return installed


@pytest.fixture
def spans(_global_provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test only."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()
