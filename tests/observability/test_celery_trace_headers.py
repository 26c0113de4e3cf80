"""The trace context rides in Celery message headers: a real worker (in a thread, Redis broker)
continues the producer's trace through telemetry.trace_carrier(self.request)."""

from __future__ import annotations

import queue

from celery import Celery
from celery.contrib.testing.worker import start_worker

from voicebot_core import telemetry


def test_celery_task_span_is_a_child_of_the_producer_span(spans, redis_url, redis_prefix):
    app = Celery("obs-trace-test", broker=redis_url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": f"{redis_prefix}:celery:"}
    app.conf.task_default_queue = "obs-trace-test"
    seen: queue.Queue[dict] = queue.Queue()

    @app.task(bind=True, name="obs.place_call")
    def place_call(self, job_id: str) -> None:
        carrier = telemetry.trace_carrier(self.request)
        with telemetry.span("dialer.place_call", parent=carrier, attrs={"dial_job.id": job_id}) as task_span:
            seen.put({"carrier": carrier, "span_id": task_span.get_span_context().span_id})

    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        with telemetry.span("dialer.create_dial_job") as api_span:
            # send_task by name, as the dialer's dispatcher does
            app.send_task("obs.place_call", args=["job-1"], headers=telemetry.inject_context())
        got = seen.get(timeout=20)

    assert set(got["carrier"]) == {"traceparent"}
    finished = {span.name: span for span in spans.get_finished_spans()}
    task = finished["dialer.place_call"]
    assert task.context.span_id == got["span_id"]
    assert task.context.trace_id == api_span.get_span_context().trace_id
    assert task.parent.span_id == api_span.get_span_context().span_id
    assert task.attributes["dial_job.id"] == "job-1"
