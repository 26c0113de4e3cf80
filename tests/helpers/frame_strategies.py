"""Hypothesis strategies for Twilio Media Streams messages (tests/core and tests/gateway use them)."""

from __future__ import annotations

import base64
import json
import string

from hypothesis import strategies as st

from voicebot_core.twilio_protocol import INBOUND_EVENTS, MAX_FRAME_CHARS, MAX_MEDIA_PAYLOAD_BYTES

B64_ALPHABET = string.ascii_letters + string.digits + "+/"
EVENTS = sorted(INBOUND_EVENTS)
SID_CHARS = string.ascii_letters + string.digits + "_.:+-"  # what the fast check's plain strings take
MISSING = object()


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
valid_payloads = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
payloads = st.one_of(
    valid_payloads,
    valid_payloads.flatmap(lambda p: st.integers(0, len(p)).map(lambda n: p[:n])),  # cut anywhere
    st.text(alphabet=B64_ALPHABET + "=", max_size=40),  # padding anywhere, any length
    st.text(alphabet=B64_ALPHABET + "=-_ \n\\\"é\x00", max_size=40),  # near misses
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", errors="replace")),
    st.text(max_size=40),
    st.integers(MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 - 8, MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 + 8).map(lambda n: "A" * n),
)
events = (st.sampled_from(EVENTS) | st.sampled_from(["clear", "Media", "", " media"]) | st.text(max_size=8)
          | json_scalars)
stream_sids = st.one_of(st.text(alphabet=SID_CHARS, min_size=1, max_size=34), st.just(""), st.text(max_size=10),
                        json_scalars)


def _optional(strategy):
    return st.one_of(st.just(MISSING), strategy)


@st.composite
def frames(draw) -> dict:
    """A dict shaped like a Media Streams message, each part present, missing or of a wrong type."""
    frame: dict = {}
    fields = {
        "event": _optional(events),
        "streamSid": _optional(stream_sids),
        "sequenceNumber": _optional(st.integers(0, 10**6).map(str) | json_scalars),
        "media": _optional(st.one_of(
            st.fixed_dictionaries({"payload": payloads}, optional={
                "track": st.sampled_from(["inbound", "outbound"]) | json_scalars,
                "chunk": st.integers(0, 10**6).map(str), "timestamp": st.integers(0, 10**6).map(str)}),
            st.dictionaries(st.text(max_size=8), json_values, max_size=3),
            json_scalars,
        )),
        "start": _optional(st.fixed_dictionaries(
            {}, optional={"callSid": st.text(max_size=34) | json_scalars, "streamSid": stream_sids,
                          "customParameters": json_values, "tracks": json_values}) | json_scalars),
        "mark": _optional(st.fixed_dictionaries({}, optional={"name": json_scalars}) | json_scalars),
        "dtmf": _optional(st.fixed_dictionaries({}, optional={"digit": json_scalars}) | json_scalars),
        "stop": _optional(json_values),
    }
    for name in draw(st.permutations(list(fields))):  # key order is part of the layout
        value = draw(fields[name])
        if value is not MISSING:
            frame[name] = value
    frame.update(draw(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in fields), json_values,
                                      max_size=2)))
    return frame


layouts = st.sampled_from([
    lambda d: json.dumps(d),
    lambda d: json.dumps(d, separators=(",", ":")),
    lambda d: json.dumps(d, indent=1),
    lambda d: json.dumps(d, ensure_ascii=False),
    lambda d: " \r\n" + json.dumps(d, separators=(",", ":")) + "\t",
])
deeply_nested = st.builds(lambda opener, n: opener * n, st.sampled_from(["[", '{"a":', '{"event":"media","media":[']),
                          st.integers(1, MAX_FRAME_CHARS // 2))
texts = st.one_of(
    st.builds(lambda d, layout: layout(d), frames(), layouts),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace")),
    deeply_nested,
)
