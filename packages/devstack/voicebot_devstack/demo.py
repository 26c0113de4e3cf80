"""`make demo`: the whole platform on local models, one simulated inbound call, printed live.

A scripted caller with a neural voice phones our number through the Twilio emulator; the
gateway hands the stream to a bot-worker running whisper, the local LLM server and a local TTS.
We print the conversation as it happens with each turn's voice-to-voice latency (end of the
caller's speech -> first bot audio heard at the phone), then where the recording is.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import redis

from voicebot_core.call_media import CallMedia
from voicebot_core.calls import CallRecordReader
from voicebot_core.object_store import FilesystemObjectStore
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.vocabulary import is_terminal_status
from voicebot_devstack import environment
from voicebot_devstack.pages import page_links
from voicebot_devstack.processes import ROOT
from voicebot_devstack.stack import Stack, StackConfig
from voicebot_devstack.turns import percentile, turn_latencies

# CALLED is not mapped: the default profile (local models), or VOICEBOT_AGENT_PROFILE's
CALLER, CALLED = "+15550001111", "+15550100000"
SCRIPT = "demo"
MIN_TURNS = 3


def _say(who: str, text: str, note: str = "") -> None:
    print(f"  {who:>6}: {text}{'   (' + note + ')' if note else ''}", flush=True)


class LiveTranscript:
    """Prints caller lines from the phone's report and agent lines from the worker's per-turn
    checkpoint, each once, in order."""

    def __init__(self, calls: CallRecordReader, call_sid: str) -> None:
        self.calls, self.call_sid = calls, call_sid
        self.said_printed = 0
        self.agent_printed = 0

    def update(self, report: dict) -> None:
        for said in report.get("said", [])[self.said_printed:]:
            _say("caller", said.get("text", ""))
            self.said_printed += 1
        messages = self.calls.context(self.call_sid)
        replies = [m for m in messages if m.get("role") == "assistant" and isinstance(m.get("content"), str)]
        latencies = [t.latency_s for t in turn_latencies(report)]
        for index, message in enumerate(replies[self.agent_printed:], start=self.agent_printed):
            turn = index - 1  # reply 0 is the greeting; reply n answers the caller's turn n-1
            note = f"voice-to-voice {latencies[turn]:.2f} s" if 0 <= turn < len(latencies) and latencies[turn] else ""
            _say("agent", message["content"], note)
            self.agent_printed += 1


def _stay_up(stack: Stack) -> None:
    print("\nthe stack stays up for the softphone and the console; Ctrl-C stops it:")
    print("\n".join(page_links(stack)), flush=True)
    try:
        while all(process.alive() for process in stack.processes.values()):
            time.sleep(1.0)
        print("a process of the stack exited: stopping", file=sys.stderr)
    except KeyboardInterrupt:
        pass


def run_demo(models_dir: Path, settings: environment.LocalConfig | None = None, stay_up: bool = False) -> int:
    """`settings`: provider keys and the answering profile from the environment / .env (the call
    itself always goes through the emulator). `stay_up`: after the call, keep the stack running for
    the softphone and the console until Ctrl-C."""
    settings = settings or environment.LocalConfig()
    llm = models_dir / "qwen2.5-1.5b" / "model.gguf"
    if not llm.exists():
        print(f"no local LLM at {llm}: run `make models`", file=sys.stderr)
        return 2
    run_dir = ROOT / "run" / "demo"
    config = environment.stack_config(settings, StackConfig(
        run_dir=run_dir, workers=1, llm_model=llm, redis_prefix=f"demo-{int(time.time())}", dialer=True,
        extra_env={"VOICEBOT_WORKER_PRELOAD_LOCAL_MODELS": "true", "VOICEBOT_MODELS_DIR": str(models_dir)}))
    print("starting Redis (if none), the Twilio emulator, the gateway, a bot-worker, the LLM server and the "
          "dialer ...",
          flush=True)
    started = time.monotonic()
    stack = Stack(config)
    try:
        stack.start()
        print("\n".join(environment.banner(settings, stack.urls["gateway"], local_llm=True, simulated_only=True)))
        print(f"stack up in {time.monotonic() - started:.1f} s; logs in {run_dir / 'logs'}")
        print("\n".join(page_links(stack)) + "\n", flush=True)
        result = _call(stack, settings.answering_profile())
        if stay_up:
            _stay_up(stack)
        return result
    finally:
        print("\nstopping everything the demo started ...", flush=True)
        stack.stop()


def _save_recording(stack: Stack, call_sid: str) -> Path | None:
    """The stored segments joined into one WAV file (what `GET /v1/calls/{id}/recording` answers)."""
    wav = CallMedia(FilesystemObjectStore(stack.storage_dir)).recording_wav(call_sid)
    if wav is None:
        return None
    path = stack.config.run_dir / "recordings" / f"{call_sid}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav)
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _call(stack: Stack, profile: str = "default") -> int:
    emulator = httpx.Client(base_url=stack.urls["emulator"], timeout=30)
    keys = RedisKeys(stack.config.redis_prefix)
    calls = CallRecordReader(redis.Redis.from_url(stack.redis_url, decode_responses=True), keys)
    call_sid = emulator.post("/emulator/calls", json={"from": CALLER, "to": CALLED, "script": SCRIPT}
                             ).raise_for_status().json()["call_sid"]
    print(f"simulated call {call_sid}: {CALLER} -> {CALLED} (agent profile: {profile})\n")
    live = LiveTranscript(calls, call_sid)
    deadline = time.monotonic() + 300
    report: dict = {}
    while time.monotonic() < deadline:
        report = emulator.get(f"/emulator/calls/{call_sid}").raise_for_status().json()
        live.update(report)
        if is_terminal_status(report["status"]):
            break
        time.sleep(0.25)
    time.sleep(1.0)  # the worker stores the transcript and recording as the call ends
    live.update(report)
    call = calls.record(call_sid)
    turns = turn_latencies(report)
    answered = [t.latency_s for t in turns if t.latency_s is not None]
    print(f"\ncall {report['status']} after {report.get('duration', 0)} s; outcome: {call.outcome if call else '?'}")
    if answered:
        print(f"voice-to-voice per turn: {', '.join(f'{v:.2f}' for v in answered)} s "
              f"(p50 {percentile(answered, 50):.2f} s)")
    print(f"recording (caller left, bot right): {_save_recording(stack, call_sid) or 'not stored'}")
    print(f"what the phone heard: {report.get('heard_wav')}")
    print(f"transcript in Redis: {keys.call_transcript(call_sid)}")
    if report["status"] != "completed" or len(answered) < MIN_TURNS:
        print(f"demo FAILED: expected a completed call with {MIN_TURNS} answered turns", file=sys.stderr)
        return 1
    return 0
