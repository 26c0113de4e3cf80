"""Per-turn voice-to-voice latency from what the emulated phone said and heard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TurnLatency:
    caller_text: str
    speech_end_s: float  # when the caller's audio ended (call clock)
    bot_audio_s: float | None  # first bot audio heard after that
    latency_s: float | None


def turn_latencies(report: dict[str, Any]) -> list[TurnLatency]:
    """For each caller utterance: end of caller speech -> first bot audio at the phone."""
    heard = sorted(report.get("heard", []), key=lambda seg: seg["start"])
    turns = []
    for said in report.get("said", []):
        end = said["end"]
        following = next((seg["start"] for seg in heard if seg["start"] >= end), None)
        turns.append(TurnLatency(said.get("text", ""), end, following,
                                 None if following is None else round(following - end, 3)))
    return turns


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


TICK_S = 0.02  # the emulated phone's playout tick


def audio_heard_between(heard: list[dict[str, float]], since: float, until: float) -> float:
    """Seconds of bot audio the phone played from ticks that began in (since, until], e.g. after a `clear`.
    A heard segment is a run of audible 20 ms ticks ending one tick after its last one; the tick under
    way at `since` had already begun, so a segment going on then counts from one tick past it."""
    total = 0.0
    for seg in heard:
        start = seg["start"] if seg["start"] > since else since + TICK_S
        total += max(0.0, min(seg["end"], until) - start)
    return round(total, 3)
