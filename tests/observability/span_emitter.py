"""One service hop for the OTLP tests, in its own process like a real service.

    python span_emitter.py SERVICE PARENT NAME [NAME ...]

Calls telemetry.setup_tracing(SERVICE) (so the OTEL_* variables decide the exporter), opens the
spans NAME... nested in that order under PARENT (a traceparent, or "-" for none), prints the
carrier the innermost span would hand to the next hop as JSON, and flushes on exit.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack

from voicebot_core import telemetry


def main() -> None:
    service, parent, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    provider = telemetry.setup_tracing(service)
    carrier = {} if parent == "-" else {"traceparent": parent}
    with ExitStack() as stack:
        for depth, name in enumerate(names):
            stack.enter_context(telemetry.span(name, parent=carrier if depth == 0 else None,
                                               attrs={"voicebot.hop": service}))
        handed_on = telemetry.inject_context()
    telemetry.shutdown_tracing(provider)
    print(json.dumps({"tracing": provider is not None, "active": telemetry.tracing_active(),
                      "carrier": handed_on}), flush=True)


if __name__ == "__main__":
    main()
