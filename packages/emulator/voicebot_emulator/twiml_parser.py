"""TwiML documents the app answers with, parsed into the verbs a call executes in order."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class TwimlError(ValueError):
    """The webhook answered something that is not TwiML (Twilio error 12100)."""


@dataclass(frozen=True)
class Verb:
    name: str
    text: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    # <Connect><Stream>: the stream url and its <Parameter>s
    stream_url: str | None = None
    stream_parameters: dict[str, str] = field(default_factory=dict)


def parse(document: str) -> list[Verb]:
    try:
        root = ET.fromstring(document.strip())
    except ET.ParseError as exc:
        raise TwimlError(f"TwiML is not well-formed XML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"TwiML root element is <{root.tag}>, expected <Response>")
    verbs: list[Verb] = []
    for element in root:
        text = (element.text or "").strip()
        if element.tag == "Connect":
            stream = element.find("Stream")
            if stream is None or not stream.get("url"):
                raise TwimlError("<Connect> without a <Stream url=...>")
            parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
            verbs.append(Verb("Connect", attrs=dict(element.attrib), stream_url=stream.get("url"),
                              stream_parameters=parameters))
        elif element.tag == "Dial":
            number = element.find("Number")
            number = element.find("Sip") if number is None else number
            target = (number.text or "").strip() if number is not None else text
            verbs.append(Verb("Dial", text=target, attrs=dict(element.attrib)))
        else:
            verbs.append(Verb(element.tag, text=text, attrs=dict(element.attrib)))
    return verbs
