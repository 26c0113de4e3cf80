"""The conversation corpus bench/conversation.py plays: our own caller turns, spoken by the emulator's
Piper voice (deterministic: the same audio every run) or, without its weights, the formant voice.

Four calls, each its own caller script and agent profile (the fake STT reads the script's lines):
    complete     12 complete questions, each answered before the next
    paused       12 sentences with a 0.5-1.5 s pause in the middle
    backchannel  a long answer, and "uh-huh", "okay", "mm-hm" (0.25 s of each), a cough or a burst of line
                 noise (0.2-0.25 s) into it
    barge        a long answer, cut off by a real question 0.2-1.7 s in (some land while the TTS is still
                 pushing a sentence), 6 times
`build_corpus` writes the scripts, the profiles file and manifest.json (every item, its call and its
words) under a folder; bench/conversation.py adds said-round-N.json beside them: each caller turn's exact
start and end as the phone played it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from voicebot_core import audio

MODELS_DIR_ENV = "VOICEBOT_MODELS_DIR"
NUMBERS = {"complete": "+15557200001", "paused": "+15557200002", "backchannel": "+15557200003",
           "barge": "+15557200004"}
LONG_REPLY = ("We are open from nine in the morning until six in the evening on weekdays, and from ten until "
              "four on Saturdays. On Sundays and public holidays we are closed, but you can always reach us "
              "online, where you can also book an appointment or check the status of an order.")
FAKE_LATENCIES = {"stt_delay_s": 0.1, "llm_ttfb_s": 0.2, "tts_ttfb_s": 0.1}
WAIT = {"wait_for_bot": {"silence_s": 1.0, "timeout_s": 20}}

# The fake STT gives each VAD segment the script's next line, so a complete question must be one
# segment: no comma, where the Piper voice pauses longer than VAD's 0.2 s stop (one did, and every later
# question got the line after its own, the last one none).
COMPLETE = [
    "What time do you open on Saturday?",
    "Can I change the delivery address of my order?",
    "Do you have the blue jacket in a medium size?",
    "How long does a refund usually take?",
    "Is there a store near the train station?",
    "Can I pay with a gift card online?",
    "What is the warranty on the coffee machine?",
    "Could you send me the invoice again please?",
    "Do you deliver on Sundays?",
    "How do I reset the password of my account?",
    "Can I speak to someone about a damaged parcel?",
    "Are your prices the same in the shop and online?",
]
PAUSED = [  # (first half, pause, second half)
    ("I would like to", 0.6, "check the status of my order"),
    ("My order number is", 0.8, "four two seven one"),
    ("Could you tell me", 1.0, "when the parcel will arrive?"),
    ("I ordered a blue jacket and", 1.2, "it came in the wrong size"),
    ("The thing is", 1.5, "I need it before Friday"),
    ("Can you", 0.5, "move the delivery to next week?"),
    ("I think", 0.9, "I was charged twice for the same order"),
    ("Well", 1.1, "what are my options then?"),
    ("So the address should be", 1.3, "twelve Station Road"),
    ("I am calling because", 0.7, "my refund has not arrived"),
    ("Let me see", 1.4, "the reference is A B three"),
    ("Yes and", 1.0, "could you email me the confirmation?"),
]
BACKCHANNELS = ["uh-huh", "okay", "mm-hm", "uh-huh", "okay", "mm-hm"]
BACKCHANNEL_S = 0.25  # under the 0.3 s that a real interruption takes
SOUNDS = {"cough.wav": 0.2, "line-noise.wav": 0.25}  # played into the answer, twice each
BARGE_INS = ["Wait, what about public holidays?", "Sorry, do you open on Sundays?",
             "Hold on, can I book online?", "Wait, is that for every store?",
             "Sorry, what time on Saturdays?", "Hang on, how do I book?"]
QUESTION = "Tell me about your opening hours"


@dataclass(frozen=True)
class Complete:
    call: str
    text: str


@dataclass(frozen=True)
class Paused:
    call: str
    first: str
    pause_s: float
    second: str


@dataclass(frozen=True)
class Backchannel:
    call: str
    label: str  # the words said, or the noise file played


@dataclass(frozen=True)
class BargeIn:
    call: str
    text: str


@dataclass
class Corpus:
    profiles_path: Path
    scripts: dict[str, dict[str, Any]]
    complete: list[Complete] = field(default_factory=list)
    paused: list[Paused] = field(default_factory=list)
    backchannels: list[Backchannel] = field(default_factory=list)
    barge_ins: list[BargeIn] = field(default_factory=list)
    first_call: str = "complete"
    numbers: dict[str, str] = field(default_factory=lambda: dict(NUMBERS))


def _voice(models_dir: Path) -> str:
    return "piper" if any((models_dir / "piper-joe").glob("*.onnx")) else "formant"


def _write_sounds(folder: Path) -> dict[str, Path]:
    """A cough (a sharp, decaying burst of low-passed noise) and hiss-and-crackle line noise, 8 kHz."""
    rng = np.random.default_rng(7)
    rate = audio.TELEPHONY_RATE
    paths = {}
    for name, seconds in SOUNDS.items():
        n = int(seconds * rate)
        noise = rng.standard_normal(n)
        if name.startswith("cough"):
            smooth = np.convolve(noise, np.ones(6) / 6, mode="same")
            pcm = smooth * np.exp(-np.linspace(0, 6, n)) * 12000
        else:
            crackle = (rng.random(n) < 0.02) * rng.standard_normal(n) * 3
            pcm = (noise * 0.5 + crackle) * 3000
        paths[name] = audio.write_wav(folder / name, np.clip(pcm, -32000, 32000).astype(np.int16), rate)
    return paths


def build_corpus(folder: Path, models_dir: Path | None = None) -> Corpus:
    models_dir = models_dir or Path(os.environ.get(MODELS_DIR_ENV, Path.home() / ".cache" / "voicebot" / "models"))
    voice = _voice(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    sounds = _write_sounds(folder)
    talk_over = ([{"say": word, "seconds": BACKCHANNEL_S} for word in BACKCHANNELS]
                 + [{"play": str(path), "seconds": SOUNDS[name]} for name, path in sounds.items() for _ in range(2)])
    steps: dict[str, list[dict[str, Any]]] = {
        "complete": [WAIT] + [s for text in COMPLETE for s in ({"say": text}, WAIT)],
        "paused": [WAIT] + [s for first, pause, second in PAUSED
                            for s in ({"say": first}, {"silence": pause}, {"say": second}, WAIT)],
        "backchannel": [WAIT] + [s for burst in talk_over
                                 for s in ({"say": QUESTION}, {"backchannel": {"after_s": 1.0, **burst}}, WAIT)],
        "barge": [WAIT] + [s for index, text in enumerate(BARGE_INS) for s in (
            {"say": QUESTION}, {"barge_in": {"after_s": round(0.2 + 0.3 * index, 1), "say": text}}, WAIT)],
    }
    scripts = {name: {"name": f"corpus-{name}", "voice": voice, "steps": [*body, {"hangup": {}}]}
               for name, body in steps.items()}
    for name, script in scripts.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(script, sort_keys=False))
    profiles = {
        "default_profile": "corpus-complete",
        "numbers": {number: f"corpus-{name}" for name, number in NUMBERS.items()},
        "profiles": {f"corpus-{name}": {  # turn_detection and noise_filter unset: the shipped defaults
            "greeting": {"inbound": "Hello, thanks for calling. How can I help you today?"},
            "providers": "fake",
            "provider_options": {**FAKE_LATENCIES, "caller_script": str(folder / f"{name}.yaml"),
                                 "replies": [{"match": "opening hours", "reply": LONG_REPLY}]},
        } for name in NUMBERS},
    }
    profiles_path = folder / "agent-profiles.yaml"
    profiles_path.write_text(yaml.safe_dump(profiles, sort_keys=False))
    corpus = Corpus(
        profiles_path=profiles_path, scripts=scripts,
        complete=[Complete("complete", text) for text in COMPLETE],
        paused=[Paused("paused", first, pause, second) for first, pause, second in PAUSED],
        backchannels=[Backchannel("backchannel", burst.get("say") or burst["play"]) for burst in talk_over],
        barge_ins=[BargeIn("barge", text) for text in BARGE_INS],
    )
    manifest = {"voice": voice, "numbers": NUMBERS, "complete": [asdict(i) for i in corpus.complete],
                "paused": [asdict(i) for i in corpus.paused],
                "backchannels": [asdict(i) for i in corpus.backchannels],
                "barge_ins": [asdict(i) for i in corpus.barge_ins]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return corpus
