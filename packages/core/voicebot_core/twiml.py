"""The one TwiML builder: every document the platform hands Twilio, every value escaped.

Text goes through XML escaping and attributes through quoteattr, so caller-controlled values
(variables, numbers, messages) can never add verbs.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr as _quoteattr

from voicebot_core.transfer_targets import is_sip

# Characters XML 1.0 does not allow at all (escaping cannot carry them): dropped.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def escape(text: str) -> str:
    return _escape(_NOT_XML.sub("", text))


def quoteattr(value: str) -> str:
    return _quoteattr(_NOT_XML.sub("", value))


_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def _document(body: str) -> str:
    return f"{_DECLARATION}<Response>{body}</Response>"


def connect_stream(stream_url: str, parameters: dict[str, str]) -> str:
    """`<Connect><Stream>` with per-call data as `<Parameter>`s (the stream URL takes no query)."""
    params = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
        for name, value in parameters.items()
        if value is not None
    )
    return _document(f"<Connect><Stream url={quoteattr(stream_url)}>{params}</Stream></Connect>")


def say_and_hang_up(message: str) -> str:
    """Say `message` (nothing when empty), then hang up: busy messages and voicemails."""
    say = f"<Say>{escape(message)}</Say>" if message else ""
    return _document(f"{say}<Hangup/>")


def hang_up() -> str:
    return say_and_hang_up("")


def dial(target: str) -> str:
    """Transfer the call: `<Dial>` to a number, or `<Dial><Sip>` to a `sip:`/`sips:` URI.

    Escaping keeps any text inside the verb; whether the target is allowed at all is checked before,
    by `voicebot_core.transfer_targets.check_transfer_target`.
    """
    if is_sip(target):
        return _document(f"<Dial><Sip>{escape(target)}</Sip></Dial>")
    return _document(f"<Dial>{escape(target)}</Dial>")
