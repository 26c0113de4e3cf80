"""Structured logs: one JSON object per line with call_sid and trace_id; phone numbers masked."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

call_sid_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("call_sid", default=None)

# Phone numbers and nothing else. Identifiers stay whole so that logs can be searched by them:
# Call/stream/account SIDs (CA.../MZ.../AC..., 32 hex digits after two letters), job ids (dj_...),
# trace ids and any other hex or alphanumeric token, dates and versions (/2010-04-01/ in Twilio's API
# URLs), Redis stream ids. What counts as a phone number:
# - E.164, raw or URL-encoded (+15551234567, %2B15551234567, +1 555-123-4567, +44 (20) 7946 0958):
#   7 or more digits after the sign, digit groups joined by at most two of " .-()";
# - a North American number written as one (555-123-4567, (555) 123-4567, 1 555 123 4567);
# - any run of 7 to 15 digits (separators allowed, not a date) as the value of a field that holds
#   numbers (To=, "from": , 'Caller': , transfer_number= , phone: ...), where a national number
#   without a country code is a phone number too;
# - a run of 10 to 15 digits standing alone in prose (between spaces, quotes, brackets or sentence
#   punctuation), as a number said by a caller reaches a transcript; never one in a URL, a path, a
#   query string or a token.
# A number never starts or ends inside a token: letters, digits or '_' next to it (or '.'/'-' between
# it and one) rule the match out, so the digits inside an identifier are never taken for a number.
_NUMBER_KEYS = (r"to|from_?|caller(?:_?id)?|called|forwarded_?from|msisdn|phone"
                r"|(?:transfer_?|to_?|from_?|caller_?|phone_?)?(?:number|target|to)")
_PHONE = re.compile(
    r"(?P<field>(?<![\w.\-])[\"']?(?i:" + _NUMBER_KEYS + r")[\"']?[ \t]*[:=][ \t]*[\"']?)"
    r"(?P<value>(?:\+|%2[Bb])?\(?\d[\d ().\-]*\d\)?)(?![\w])(?![.\-]\w)"
    r"|(?P<e164>(?:\+|%2[Bb])\d+(?:(?:[ .\-()]{1,2}|%20)\d+)*)(?![\w])(?![.\-]\w)"
    r"|(?<![\w.\-+])(?<!%2[Bb])(?<!\w[.\-])(?P<nanp>(?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4})"
    r"(?![\w])(?![.\-]\w)"
    r"|(?:(?<=^)|(?<=[\s(\[\"']))(?P<plain>\d{10,15})(?=$|[\s)\]\"',;!?]|[.:](?:\s|$))"
)
# Field values of a number's characters that are not numbers: a date, an IPv4 address.
_NOT_A_NUMBER = re.compile(r"\(?(?:\d{4}-\d{2}-\d{2}|\d{1,3}(?:\.\d{1,3}){3}(?!\d))")


def _masked(number: str) -> str:
    """'+15551234567' -> '+1555***4567', '5551234567' -> '555***4567': the sign, the first digits
    and the last four: enough to correlate, not enough to dial."""
    sign = "%2B" if number[:3].upper() == "%2B" else "+" if number[:1] == "+" else ""
    rest = number[len(sign):]
    return sign + rest[:4 if sign else 3] + "***" + rest[-4:]


def _mask(m: re.Match[str]) -> str:
    value = m.group("value")
    if value is not None:
        digits = sum(c.isdigit() for c in value)
        signed = value[:1] == "+" or value[:3].upper() == "%2B"
        if digits >= 7 and (signed or digits <= 15) and not _NOT_A_NUMBER.match(value):
            return m.group("field") + _masked(value)
        return m.group(0)
    number = m.group("e164") or m.group("nanp") or m.group("plain")
    if m.group("e164") and sum(c.isdigit() for c in number) < 7:
        return number
    return _masked(number)


def mask_phone(text: str) -> str:
    """Phone numbers in `text` masked ('+15551234567' -> '+1555***4567'); identifiers, dates and
    other numbers left as they are."""
    return _PHONE.sub(_mask, text)


def mask_field(key: str, value: object) -> object:
    """A structured field's value with its phone numbers masked: strings (inside dicts and lists
    too) as mask_phone does, and a whole value that is a number when the key names a number field."""
    if isinstance(value, str):
        masked = mask_phone(value)
        if masked == value and _NUMBER_KEY.fullmatch(key):
            field = mask_phone(f"{key}={value}")
            return field[len(key) + 1:]
        return masked
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return mask_field(key, str(value)) if _NUMBER_KEY.fullmatch(key) and len(str(value)) >= 7 else value
    if isinstance(value, dict):
        return {str(k): mask_field(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_field(key, item) for item in value]
    return mask_phone(str(value))


_NUMBER_KEY = re.compile(r"(?i:" + _NUMBER_KEYS + r")")
# What every LogRecord has; any other attribute came in through `extra=` (but uvicorn's coloured copy
# of its message).
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "call_sid", "color_message"}


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
        for key, value in record.__dict__.items():  # fields given with extra=, masked like the message
            if key not in _RECORD_FIELDS and key not in entry and not key.startswith("_"):
                entry[key] = mask_field(key, value) if self._mask else value
        trace_id = _trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:  # an error's text may quote a number too (Twilio's "The 'To' number ...")
            exc = self.formatException(record.exc_info)
            entry["exc"] = mask_phone(exc) if self._mask else exc
        return json.dumps(entry, default=str)


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
