#!/usr/bin/env python3
"""Conversation quality from outside: what a caller notices in whole calls through the stack.

A corpus of caller turns (bench/conversation_corpus.py: complete questions, questions with a
0.5-1.5 s pause mid-sentence, backchannels and noise bursts while the bot talks, real barge-ins)
is played by the Twilio emulator's phone through the gateway to a bot-worker running the shipped
turn path (Smart Turn v3, noise filter, Silero VAD) on fake providers at fixed latencies (STT 100 ms,
LLM first token 200 ms, TTS first audio 100 ms). Everything is read from the phone's side: what it
said and when, what it heard and when, each `clear` it received.

    false cut-ins        the bot's audio starts after the first half of a paused sentence and before
                         the caller finished the second half
    reply (clear end)    end of a complete question -> first bot audio (p50/p95; > 2.5 s counts as
                         Smart Turn's fallback)
    barge-in clear       the caller's first syllable over the bot -> `clear` at the phone (p50/p95)
    audio after clear    bot audio heard after that `clear` while the caller still speaks (max)
    barge-in silent      the caller's first syllable over the bot -> the last bot audio the phone played
                         before the caller finished (p50/p95)
    false interruptions  a backchannel or noise burst under 0.3 s after which the bot's reply did not
                         go on (no bot audio within 1.5 s of its end)
    backchannel pause    the bot pauses at the caller's voice (barge_in_pause.py): the longest gap in
                         bot audio around each backchannel (p50/p95), and how many paused at all
    greeting             stream connected -> first greeting audio, the worker's first call and later ones
    offline v2v          (--offline) the local models (whisper, Qwen2.5 1.5B, hibari): end of caller
                         speech -> first bot audio, p50/p95, on the demo's script

    python bench/conversation.py [--rounds 2] [--offline | --offline-only] [--offline-calls 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/emulator", "packages/devstack", "packages/simulation",
                    "services/bot-worker"):
    sys.path.insert(0, str(ROOT / package_dir))

from conversation_corpus import Corpus, build_corpus  # noqa: E402
from emulated_call import place  # noqa: E402

from voicebot_devstack.stack import Stack, StackConfig  # noqa: E402
from voicebot_devstack.turns import audio_heard_between, percentile, turn_latencies  # noqa: E402

MODELS_DIR = Path(os.environ.get("VOICEBOT_MODELS_DIR", Path.home() / ".cache" / "voicebot" / "models"))
FALLBACK_S = 2.5  # a reply slower than this on a clear ending waited for Smart Turn's 3 s fallback
RESUME_WINDOW_S = 1.5  # a reply that does not go on this soon after a backchannel was interrupted by it


@dataclass
class Figures:
    cut_ins: int = 0
    paused_turns: int = 0
    caller_overlaps: int = 0  # the bot talking while the caller still spoke a paused sentence
    replies: list[float] = field(default_factory=list)
    fallbacks: int = 0
    unanswered: int = 0
    barge_clears: list[float] = field(default_factory=list)
    barge_missed: int = 0
    barge_silent: list[float] = field(default_factory=list)
    audio_after_clear: list[float] = field(default_factory=list)
    false_interruptions: int = 0
    backchannels: int = 0
    backchannel_gaps: list[float] = field(default_factory=list)
    backchannel_paused: int = 0
    greeting_cold: list[float] = field(default_factory=list)
    greeting_warm: list[float] = field(default_factory=list)



def _said(report: dict[str, Any], text: str, after: float = -1.0) -> dict[str, Any] | None:
    return next((s for s in report["said"] if s.get("text") == text and s["start"] > after), None)


def _first_heard(report: dict[str, Any], after: float) -> float | None:
    return next((seg["start"] for seg in sorted(report["heard"], key=lambda s: s["start"]) if seg["start"] >= after),
                None)


def greeting_s(report: dict[str, Any]) -> float | None:
    connected = next((e["t"] for e in report["timeline"] if e["event"] == "stream-connected"), None)
    first = _first_heard(report, connected) if connected is not None else None
    return None if first is None else first - connected


def score(corpus: Corpus, reports: dict[str, dict[str, Any]], figures: Figures) -> None:
    for item in corpus.paused:
        report = reports[item.call]
        first, second = _said(report, item.first), _said(report, item.second)
        if first is None or second is None:
            continue
        figures.paused_turns += 1
        started = _first_heard(report, first["end"])
        if started is not None and started < second["end"]:
            figures.cut_ins += 1
            if started > second["start"]:
                figures.caller_overlaps += 1
    for item in corpus.complete:
        said = _said(reports[item.call], item.text)
        if said is None:
            continue
        started = _first_heard(reports[item.call], said["end"])
        if started is None:
            figures.unanswered += 1
            continue
        figures.replies.append(started - said["end"])
        figures.fallbacks += started - said["end"] > FALLBACK_S
    for item in corpus.barge_ins:
        report = reports[item.call]
        said = _said(report, item.text)
        if said is None:
            continue
        clear = next((t for t in report["clears"] if t >= said["start"] - 0.05), None)
        if clear is None or clear > said["end"]:
            figures.barge_missed += 1
            continue
        figures.barge_clears.append(clear - said["start"])
        last = max((min(seg["end"], said["end"]) for seg in report["heard"] if seg["start"] < said["end"]),
                   default=said["start"])
        figures.barge_silent.append(max(0.0, last - said["start"]))
        figures.audio_after_clear.append(audio_heard_between(report["heard"], clear, said["end"]))
    labels = {item.label for item in corpus.backchannels}
    for call in {item.call for item in corpus.backchannels}:
        report = reports[call]
        for said in report["said"]:
            if said.get("text") not in labels and said.get("play") not in labels:
                continue
            figures.backchannels += 1
            heard = sorted(report["heard"], key=lambda seg: seg["start"])
            if not any(seg["end"] > said["end"] and seg["start"] < said["end"] + RESUME_WINDOW_S for seg in heard):
                figures.false_interruptions += 1
                continue
            gap = _longest_gap(heard, said["start"], said["end"] + RESUME_WINDOW_S)
            figures.backchannel_gaps.append(gap)
            figures.backchannel_paused += any(said["start"] - 0.05 <= t <= said["end"] + 0.5 for t in report["clears"])


def _longest_gap(heard: list[dict[str, float]], since: float, until: float) -> float:
    """The longest stretch of (since, until) with no bot audio playing, among sorted heard segments."""
    longest, at = 0.0, since
    for seg in heard:
        if seg["end"] <= at:
            continue
        if seg["start"] >= until:
            break
        longest = max(longest, seg["start"] - at)
        at = seg["end"]
    return round(max(longest, until - at if at < until else 0.0), 3)


def run_corpus(rounds: int, run_dir: Path) -> Figures:
    corpus = build_corpus(run_dir / "corpus")
    config = StackConfig(run_dir=run_dir, workers=1, worker_capacity=2, profiles_path=corpus.profiles_path,
                         redis_prefix=f"conversation-{int(time.time())}",
                         extra_env={"VOICEBOT_MODELS_DIR": str(MODELS_DIR), "VOICEBOT_LOG_LEVEL": "WARNING"})
    stack = Stack(config)
    figures = Figures()
    try:
        stack.start()
        emulator = stack.urls["emulator"]
        # the worker's first call: nothing else runs beside it
        cold = place(emulator, corpus.numbers[corpus.first_call], corpus.scripts[corpus.first_call])
        figures.greeting_cold.append(greeting_s(cold) or float("nan"))
        for round_index in range(rounds):
            reports = {corpus.first_call: cold} if round_index == 0 else {}
            todo = {name: script for name, script in corpus.scripts.items() if name not in reports}
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                futures = {name: pool.submit(place, emulator, corpus.numbers[name], script)
                           for name, script in todo.items()}
                reports.update({name: future.result() for name, future in futures.items()})
            # the exact offsets of every caller turn as the phone played it, beside the manifest
            offsets = {name: report["said"] for name, report in reports.items()}
            (run_dir / "corpus" / f"said-round-{round_index + 1}.json").write_text(json.dumps(offsets, indent=1))
            for report in reports.values():
                if report is not cold:
                    figures.greeting_warm.append(greeting_s(report) or float("nan"))
            score(corpus, reports, figures)
    finally:
        stack.stop()
    return figures


def run_offline(calls: int, run_dir: Path) -> list[float]:
    llm = MODELS_DIR / "qwen2.5-1.5b" / "model.gguf"
    if not llm.exists():
        raise SystemExit(f"no local LLM at {llm}: run `make models`")
    config = StackConfig(run_dir=run_dir, workers=1, profiles_path=ROOT / "config" / "agent-profiles.yaml",
                         llm_model=llm, redis_prefix=f"conversation-offline-{int(time.time())}",
                         extra_env={"VOICEBOT_MODELS_DIR": str(MODELS_DIR), "VOICEBOT_LOG_LEVEL": "WARNING",
                                    "VOICEBOT_WORKER_PRELOAD_LOCAL_MODELS": "true"})
    stack = Stack(config)
    latencies: list[float] = []
    try:
        stack.start()
        for _ in range(calls):
            report = place(stack.urls["emulator"], "+15550100000", yaml.safe_load(
                (ROOT / "packages/simulation/voicebot_simulation/scripts/demo.yaml").read_text()))
            latencies += [t.latency_s for t in turn_latencies(report) if t.latency_s is not None]
    finally:
        stack.stop()
    return latencies


def ms(values: list[float], pct: float) -> str:
    return "-" if not values else f"{percentile(values, pct) * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="times the corpus is played")
    parser.add_argument("--offline", action="store_true", help="also the local models' voice-to-voice")
    parser.add_argument("--offline-calls", type=int, default=2)
    parser.add_argument("--offline-only", action="store_true", help="only the local models' voice-to-voice")
    args = parser.parse_args()
    if args.offline_only:
        print_offline(args.offline_calls)
        return 0
    figures = run_corpus(args.rounds, ROOT / "run" / "bench-conversation")
    print(f"\nconversation quality, shipped turn path (Smart Turn v3 + noise filter) on fake providers "
          f"(STT 100 / LLM 200 / TTS 100 ms), {os.cpu_count()} cores, corpus played {args.rounds}x")
    print(f"  false cut-ins on mid-sentence pauses   {figures.cut_ins} of {figures.paused_turns}"
          f"   (bot talking while the caller still spoke: {figures.caller_overlaps})")
    print(f"  reply on clear endings                 p50 {ms(figures.replies, 50)} ms, p95 {ms(figures.replies, 95)} "
          f"ms   ({figures.fallbacks} of {len(figures.replies)} over {FALLBACK_S} s, {figures.unanswered} unanswered)")
    print(f"  barge-in -> clear                      p50 {ms(figures.barge_clears, 50)} ms, "
          f"p95 {ms(figures.barge_clears, 95)} ms   ({figures.barge_missed} not cleared)")
    after = max(figures.audio_after_clear, default=float("nan"))
    with_any = sum(1 for a in figures.audio_after_clear if a > 0)
    print(f"  bot audio after clear                  max {after * 1000:.0f} ms, "
          f"{with_any} of {len(figures.audio_after_clear)} barge-ins with any")
    print(f"  barge-in -> bot silent at the phone    p50 {ms(figures.barge_silent, 50)} ms, "
          f"p95 {ms(figures.barge_silent, 95)} ms")
    print(f"  false interruptions (backchannel/noise) {figures.false_interruptions} of {figures.backchannels}")
    print(f"  pause in the reply at a backchannel    p50 {ms(figures.backchannel_gaps, 50)} ms, "
          f"p95 {ms(figures.backchannel_gaps, 95)} ms   ({figures.backchannel_paused} of "
          f"{len(figures.backchannel_gaps)} paused with a `clear`)")
    print(f"  greeting after stream start            first call {ms(figures.greeting_cold, 50)} ms, "
          f"later calls p50 {ms(figures.greeting_warm, 50)} ms, p95 {ms(figures.greeting_warm, 95)} ms")
    if args.offline:
        print_offline(args.offline_calls)
    return 0


def print_offline(calls: int) -> None:
    latencies = run_offline(calls, ROOT / "run" / "bench-conversation-offline")
    print(f"  offline voice-to-voice (local models)  p50 {ms(latencies, 50)} ms, p95 {ms(latencies, 95)} ms "
          f"over {len(latencies)} turns: {', '.join(f'{s * 1000:.0f}' for s in latencies)} ms")


if __name__ == "__main__":
    sys.exit(main())
