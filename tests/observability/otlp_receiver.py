"""A small OTLP trace receiver on loopback: OTLP/HTTP (protobuf) and OTLP/gRPC, both decoded with
the official opentelemetry-proto messages, so an exporter talks to it exactly as to a collector.

    with otlp_receiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint}    # or receiver.grpc_endpoint
        ...
        spans = receiver.wait_for(lambda spans: any(s.name == "call.session" for s in spans))
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str           # "" for a root span
    kind: int
    attributes: dict[str, Any] = field(default_factory=dict)
    via: str = ""                 # "http" or "grpc"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


class OtlpReceiver:
    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Condition()
        self.http_endpoint = ""
        self.grpc_endpoint = ""
        self.requests = {"http": 0, "grpc": 0}

    def record(self, request: trace_service_pb2.ExportTraceServiceRequest, via: str) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        name=span.name, service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                        attributes={kv.key: _value(kv.value) for kv in span.attributes}, via=via))
        with self._lock:
            self.requests[via] += 1
            self._spans.extend(received)
            self._lock.notify_all()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not done(self._spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [(s.service, s.name) for s in self._spans]
                    raise TimeoutError(f"spans received so far: {names}")
                self._lock.wait(remaining)
            return list(self._spans)


class _GrpcTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(self, request, context):
        self._receiver.record(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


def _http_handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/traces" or "protobuf" not in self.headers.get("Content-Type", ""):
                self.send_error(404 if self.path != "/v1/traces" else 415)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                import gzip

                body = gzip.decompress(body)
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.record(request, "http")
            payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@contextlib.contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """Both OTLP transports on free 127.0.0.1 ports for the duration of the block."""
    receiver = OtlpReceiver()
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(receiver))
    http_thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    http_thread.start()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_GrpcTraceService(receiver), grpc_server)
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    receiver.http_endpoint = f"http://127.0.0.1:{http_server.server_address[1]}"
    receiver.grpc_endpoint = f"http://127.0.0.1:{grpc_port}"
    try:
        yield receiver
    finally:
        grpc_server.stop(grace=None)
        http_server.shutdown()
        http_server.server_close()


@dataclass(frozen=True)
class Collector:
    http_endpoint: str
    grpc_endpoint: str


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def rotel_collector(forward_to: str, log_path: str) -> Iterator[Collector]:
    """A real OpenTelemetry collector (rotel, from PyPI) on loopback: receives OTLP/HTTP and
    OTLP/gRPC and exports everything over OTLP/gRPC to `forward_to` (e.g. our receiver)."""
    import socket
    import subprocess
    from pathlib import Path

    import rotel

    agent = Path(rotel.__file__).parent / "rotel-agent"
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    grpc_port, http_port = ports
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(agent), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "otlp",
             "--otlp-exporter-endpoint", forward_to, "--batch-timeout", "100ms"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while not (_port_open(grpc_port) and _port_open(http_port)):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rotel did not start: {Path(log_path).read_text()[-2000:]}")
                time.sleep(0.05)
            yield Collector(http_endpoint=f"http://127.0.0.1:{http_port}",
                            grpc_endpoint=f"http://127.0.0.1:{grpc_port}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
