#!/usr/bin/env python3
"""Voice-to-voice latency of the local stack, stage by stage, on this machine.

For each caller turn: a neural caller voice (Piper) says a line, it goes through the phone channel
(8 kHz mu-law, upsampled to 16 kHz the way the Twilio serializer does), then

    STT   whisper tiny.en transcribes the segment (the same model and call as WhisperSTTService),
    LLM   the local LLM server streams a reply until its first clause or sentence is complete (the
          local voice starts there: providers/first_clause.py),
    TTS   the bot voice synthesizes that text until its first audio chunk.

voice-to-voice = STT + LLM first clause + TTS first audio, from the end of the caller's speech;
turn detection (VAD stop + speech timeout, ~0.6 s with the worker defaults) comes on top.

    python bench/voice_to_voice.py --start-llm qwen2.5-1.5b --turns 4
    python bench/voice_to_voice.py --llm-base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/emulator", "services/bot-worker"):
    sys.path.insert(0, str(ROOT / package_dir))

from voicebot_core import audio  # noqa: E402
from voicebot_emulator.neural_voice import PiperVoice  # noqa: E402
from voicebot_worker.providers import local  # noqa: E402

CALLER_LINES = [
    "Hi, I'd like to book a plumber for a leaking kitchen tap.",
    "Tomorrow morning would be best, around nine if possible.",
    "My address is twelve Oak Street.",
    "How much does a visit usually cost?",
    "Great, thank you. That's all I needed.",
]
PERSONA = ("You are Robin, the friendly phone assistant of Acme Home Services. Answer in one or two short "
           "sentences, suitable for reading aloud.")
FIRST_CHUNK_END = re.compile(r"[.!?](\s|$)|[,;:]\s")  # as FirstClauseTextAggregator cuts
# The demo profile's tools, in OpenAI form: with them the prompt is ~300 tokens longer.
TOOLS = [{"type": "function", "function": {"name": name, "description": description,
                                           "parameters": {"type": "object", "properties": {}, "required": []}}}
         for name, description in (("end_call", "End the call when the caller is done."),
                                   ("transfer_to_human", "Transfer the caller to a human agent."))]


@dataclass
class Turn:
    caller_text: str
    heard: str
    reply_first_sentence: str
    stt_s: float
    llm_first_token_s: float
    llm_first_sentence_s: float
    tts_first_audio_s: float

    @property
    def voice_to_voice_s(self) -> float:
        return self.stt_s + self.llm_first_sentence_s + self.tts_first_audio_s


def phone_channel(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Caller audio as the pipeline sees it: 8 kHz mu-law, then 16 kHz like the serializer."""
    from pipecat.audio.utils import create_stream_resampler, ulaw_to_pcm

    mulaw = audio.pcm16_to_mulaw(audio.resample(pcm, rate, 8000))
    upsampled = asyncio.run(ulaw_to_pcm(mulaw, 8000, local.PIPELINE_SAMPLE_RATE, create_stream_resampler()))
    # SegmentedSTTService pads every segment with 0.5 s of silence before transcribing it.
    return np.concatenate([np.frombuffer(upsampled, np.int16), np.zeros(local.PIPELINE_SAMPLE_RATE // 2, np.int16)])


def transcribe(model, pcm16k: np.ndarray) -> str:
    segments, _ = model.transcribe(pcm16k.astype(np.float32) / 32768.0, language="en")
    return " ".join(s.text.strip() for s in segments if s.no_speech_prob < 0.4)


def first_sentence(client, messages: list[dict], model_name: str, tools: list[dict] | None
                   ) -> tuple[str, str, float, float]:
    """Stream a reply; returns (first clause, whole reply, first token s, first clause s)."""
    started = time.monotonic()
    first_token_s = first_sentence_s = 0.0
    reply = ""
    sentence = ""
    extra = {"tools": tools} if tools else {}
    stream = client.chat.completions.create(model=model_name, messages=messages, stream=True,
                                            max_tokens=80, temperature=0.3, **extra)
    for chunk in stream:
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if not delta:
            continue
        if not first_token_s:
            first_token_s = time.monotonic() - started
        reply += delta
        end = None if sentence else FIRST_CHUNK_END.search(reply)
        if end:
            sentence = reply[:end.end()]
            first_sentence_s = time.monotonic() - started
    if not sentence:
        sentence, first_sentence_s = reply, time.monotonic() - started
    return sentence.strip(), reply.strip(), first_token_s, first_sentence_s


def tts_first_audio(engine: str, voice, text: str) -> float:
    started = time.monotonic()
    if engine == "hibari":
        phonemes = voice.phonemize(text)
        voice.from_ids(voice.ids(phonemes[0]))
    else:
        next(iter(voice.synthesize(text)))
    return time.monotonic() - started


@contextmanager
def llm_server(model_path: Path, threads: int):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "services/bot-worker"), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "voicebot_worker.llm_server", "--model", str(model_path),
                             "--port", str(port), "--threads", str(threads)], env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"llm_server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("llm_server not healthy after 300 s") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def run(args: argparse.Namespace, base_url: str) -> list[Turn]:
    from openai import OpenAI

    settings = argparse.Namespace(models_dir=str(args.models_dir), worker_llm_base_url=base_url)
    caller = PiperVoice(Path(args.models_dir) / local.PIPER_DIR)
    whisper = local.GreedyWhisper(local.shared_whisper_model(str(local.whisper_model_dir(settings))))
    if args.tts == "hibari":
        bot_voice = local.shared_hibari()
    else:
        from piper import PiperVoice as Piper

        bot_voice = Piper.load(local.piper_model_path(settings))
        list(bot_voice.synthesize("Ready."))
    client = OpenAI(base_url=base_url, api_key="local")
    tools = TOOLS if args.tools else None
    # Wait for the server's own warm-up, then cache the prompt prefix, as the worker's prefill does.
    started = time.monotonic()
    first_sentence(client, [{"role": "system", "content": PERSONA}, {"role": "user", "content": "Hello?"}],
                   args.llm_model, tools)
    print(f"prompt prefill (incl. waiting for the server's warm-up): {time.monotonic() - started:.2f}s")
    messages = [{"role": "system", "content": PERSONA}]
    turns = []
    for line in CALLER_LINES[: args.turns]:
        caller_pcm = phone_channel(caller.synthesize(line, sample_rate=22050), 22050)
        started = time.monotonic()
        heard = transcribe(whisper, caller_pcm)
        stt_s = time.monotonic() - started
        messages.append({"role": "user", "content": heard})
        sentence, reply, first_token_s, first_sentence_s = first_sentence(client, messages, args.llm_model, tools)
        messages.append({"role": "assistant", "content": reply})
        tts_s = tts_first_audio(args.tts, bot_voice, sentence or "Okay.")
        turn = Turn(line, heard, sentence, stt_s, first_token_s, first_sentence_s, tts_s)
        turns.append(turn)
        print(f"STT {stt_s:.2f}s | LLM first token {first_token_s:.2f}s, clause {first_sentence_s:.2f}s | "
              f"TTS {tts_s * 1000:.0f}ms | voice-to-voice {turn.voice_to_voice_s:.2f}s\n"
              f"    caller: {line}\n    heard:  {heard}\n    bot:    {sentence}", flush=True)
    return turns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=local.models_dir())
    parser.add_argument("--llm-base-url", help="a running llm_server; default: start one (--start-llm)")
    parser.add_argument("--start-llm", default="qwen2.5-1.5b", help="model dir name under the models dir")
    parser.add_argument("--llm-threads", type=int, default=2)
    parser.add_argument("--llm-model", default="local")
    parser.add_argument("--tts", choices=("hibari", "piper"), default="hibari")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--tools", action="store_true", help="send the demo profile's two tools")
    parser.add_argument("--json", type=Path, help="also write the turns here")
    args = parser.parse_args()

    if args.llm_base_url:
        turns = run(args, args.llm_base_url)
    else:
        model_path = local.require_model(args.models_dir / args.start_llm / "model.gguf", f"{args.start_llm} GGUF")
        with llm_server(model_path, args.llm_threads) as base_url:
            turns = run(args, base_url)
    totals = [t.voice_to_voice_s for t in turns]
    print(f"voice-to-voice over {len(turns)} turns: median {statistics.median(totals):.2f}s, "
          f"min {min(totals):.2f}s, max {max(totals):.2f}s (plus turn detection)")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(t), "voice_to_voice_s": t.voice_to_voice_s} for t in turns],
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
