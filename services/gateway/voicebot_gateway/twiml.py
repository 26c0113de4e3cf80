"""TwiML documents the gateway answers with."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr


def connect_stream(stream_url: str, parameters: dict[str, str]) -> str:
    params = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
        for name, value in parameters.items()
        if value is not None
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream></Connect></Response>"
    )


def say_and_hang_up(message: str) -> str:
    say = f"<Say>{escape(message)}</Say>" if message else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{say}<Hangup/></Response>'


def hang_up() -> str:
    return say_and_hang_up("")
