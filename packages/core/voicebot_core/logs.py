"""Structured logs: one JSON object per line with call_sid and trace_id; phone numbers masked."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

call_sid_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_sid", default=None)

_PHONE = re.compile(r"\+?\d[\d\- ]{6,}\d")


def mask_phone(text: str) -> str:
    """'+15551234567' -> '+1555***4567': enough to correlate, not enough to dial."""
    def _mask(m: re.Match[str]) -> str:
        digits = m.group(0)
        return digits[:5] + "***" + digits[-4:] if len(digits) > 9 else digits
    return _PHONE.sub(_mask, text)


def _trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover
        return None
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, mask_numbers: bool = True) -> None:
        super().__init__()
        self._service = service
        self._mask = mask_numbers

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self._mask:
            message = mask_phone(message)
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": message,
        }
        call_sid = getattr(record, "call_sid", None) or call_sid_var.get()
        if call_sid:
            entry["call_sid"] = call_sid
        trace_id = _trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(service: str, level: str = "INFO", json_logs: bool = True, mask_numbers: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter(service, mask_numbers))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _route_loguru(level)


def _route_loguru(level: str) -> None:
    """pipecat logs through loguru; send it into the same handler so logs stay one format."""
    try:
        from loguru import logger as loguru_logger
    except ImportError:
        return

    def _sink(message) -> None:
        rec = message.record
        logging.getLogger(f"pipecat.{rec['name']}").log(rec["level"].no, rec["message"])

    loguru_logger.remove()
    loguru_logger.add(_sink, level=level.upper())
