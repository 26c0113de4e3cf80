#!/usr/bin/env python3
"""Answer quality and speed of a local LLM on a fixed set of phone conversations.

Speed alone does not pick a model for the agent: a faster model that tells Acme's caller to "call Acme"
is worse than a slower one. This plays the same caller lines, in the same four conversations and with
the demo agent's persona, to each model given (through `voicebot_worker.llm_server`, as the stack
runs it) and prints every answer with its time to the first token and to the first clause, for a
person to read side by side.

    python bench/llm_answers.py ~/.cache/voicebot/models/qwen2.5-1.5b/model.gguf [other.gguf ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import yaml
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_to_voice import ROOT, first_sentence, llm_server

CONVERSATIONS = [
    ["Hi, my kitchen sink is leaking. Can you send a plumber?", "Tomorrow morning would be great.",
     "Thank you, that is all. Goodbye."],
    ["My boiler stopped working and there's no hot water.", "How much does a visit cost?",
     "Okay, my address is twelve Oak Street."],
    ["Do you also fix electrical wiring?", "What are your opening hours?", "Can I talk to a real person?"],
    ["Hello?", "I smell gas in my kitchen.", "What should I do right now?"],
]


def demo_persona() -> str:
    profiles = yaml.safe_load((ROOT / "config" / "agent-profiles.yaml").read_text())
    return " ".join(profiles["profiles"]["default"]["persona"].split())


def run(model: Path, threads: int) -> list[float]:
    persona = demo_persona()
    clause_times = []
    print(f"\n== {model}")
    with llm_server(model, threads) as base_url:
        client = OpenAI(base_url=base_url, api_key="local")
        # the worker prefills the persona while the greeting plays
        first_sentence(client, [{"role": "system", "content": persona}, {"role": "user", "content": "Hello?"}],
                       "local", None)
        for lines in CONVERSATIONS:
            messages = [{"role": "system", "content": persona}]
            for line in lines:
                messages.append({"role": "user", "content": line})
                _, reply, first_token_s, first_clause_s = first_sentence(client, messages, "local", None)
                messages.append({"role": "assistant", "content": reply})
                clause_times.append(first_clause_s)
                print(f"  [{first_token_s:.2f} / {first_clause_s:.2f} s] caller: {line}\n"
                      f"                   agent:  {reply}", flush=True)
            print()
    print(f"first clause: median {statistics.median(clause_times):.2f} s, "
          f"{min(clause_times):.2f}-{max(clause_times):.2f} s over {len(clause_times)} answers")
    return clause_times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="GGUF files")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for model in args.models:
        run(model, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
