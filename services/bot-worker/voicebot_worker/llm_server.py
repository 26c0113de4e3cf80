"""The local LLM as its own process: llama.cpp's OpenAI-compatible server (xllamacpp) on one GGUF file.

    python -m voicebot_worker.llm_server --model ~/.cache/voicebot/models/qwen2.5-1.5b/model.gguf --port 8000

Bot-workers talk to it with pipecat's OpenAILLMService at http://127.0.0.1:PORT/v1. It serves
/v1/chat/completions (streaming), /v1/models and /health (200 once the model is loaded). One warm-up
completion runs right after loading (requests that arrive meanwhile queue behind it): otherwise the
first real turn pays for cold weights and thread start-up (seconds with the 1.5B model on 2 cores).
SIGTERM/SIGINT stop it with exit code 0. The model loads off the main thread, but the native load
holds the GIL, so a signal during loading is handled when loading ends.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger("voicebot_worker.llm_server")

WARM_UP_MESSAGES = [
    {"role": "system", "content": "You are a friendly phone assistant. Answer in one short sentence."},
    {"role": "user", "content": "Hello, who am I speaking with?"},
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a GGUF model over an OpenAI-compatible HTTP API.")
    parser.add_argument("--model", type=Path, required=True, help="GGUF file (see `make models`)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ctx", type=int, default=4096, help="context window in tokens")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for prompt and generation")
    parser.add_argument("--parallel", type=int, default=1, help="concurrent sequences (slots)")
    parser.add_argument("--alias", default="local", help="model name reported by /v1/models")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false")
    return parser.parse_args(argv)


def build_params(args: argparse.Namespace):  # -> xllamacpp.CommonParams
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_predict = 256  # a phone turn is a sentence or two; caps a runaway generation
    params.verbosity = 1  # llama.cpp logs per-request timings at the default level; keep warnings only
    template = gguf_string(args.model, "tokenizer.chat_template")
    if template and TOOL_EXAMPLE_WITH_DOUBLE_BRACES in template:
        params.chat_template = repair_chat_template(template)
        logger.info("llm_server: repaired the tool-call example in the model's chat template")
    return params


# Qwen2.5(-Coder) GGUF templates show the tool-call format inside a Jinja string literal, where `{{`
# is not an expression but literal text, and the model imitates it: `{{"name": ...}}`. Repaired, the
# 1.5B model writes `{"name": ...}` (still without <tool_call> tags, so llama.cpp returns it as text;
# providers.local_llm.LocalOpenAILLMService turns it into a function call).
TOOL_EXAMPLE_WITH_DOUBLE_BRACES = '{{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}}'
TOOL_EXAMPLE = '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}'


def repair_chat_template(template: str) -> str:
    return template.replace(TOOL_EXAMPLE_WITH_DOUBLE_BRACES, TOOL_EXAMPLE)


_GGUF_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                        12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_string(path: Path, wanted_key: str) -> str | None:
    """One string value from a GGUF file's metadata (header only; the tensors are not read)."""
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            return None

        def unpack(fmt: str) -> Any:
            return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]

        def read_string() -> str:
            return handle.read(unpack("<Q")).decode("utf-8", "replace")

        def skip_value(value_type: int) -> None:
            if value_type == _GGUF_STRING:
                handle.seek(unpack("<Q"), 1)
            elif value_type == _GGUF_ARRAY:
                item_type, count = unpack("<I"), unpack("<Q")
                if item_type in _GGUF_SCALAR_FORMATS:
                    handle.seek(struct.calcsize(_GGUF_SCALAR_FORMATS[item_type]) * count, 1)
                else:
                    for _ in range(count):
                        skip_value(item_type)
            else:
                handle.seek(struct.calcsize(_GGUF_SCALAR_FORMATS[value_type]), 1)

        unpack("<I")  # version
        unpack("<Q")  # tensor count
        for _ in range(unpack("<Q")):
            key, value_type = read_string(), unpack("<I")
            if key == wanted_key and value_type == _GGUF_STRING:
                return read_string()
            skip_value(value_type)
    return None


def warm_up(server) -> float:
    """One short chat completion through the same code path as real turns; returns its seconds."""
    started = time.monotonic()
    server.handle_chat_completions({"messages": WARM_UP_MESSAGES, "max_tokens": 8, "temperature": 0})
    return time.monotonic() - started


class LoadedServer:
    """Loads the model and runs the warm-up off the main thread, which stays free for signals."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self.server: Any = None
        self.thread = threading.Thread(target=self._load_and_warm_up, name="llm-load", daemon=True)

    def _load_and_warm_up(self) -> None:
        import xllamacpp

        started = time.monotonic()
        self.server = xllamacpp.Server(build_params(self._args))  # loads the model, then listens
        logger.info("llm_server: %s loaded in %.1f s, listening on %s", self._args.model.name,
                    time.monotonic() - started, self.server.listening_address)
        if self._args.warm_up:
            logger.info("llm_server: warm-up completion took %.2f s", warm_up(self.server))
        logger.info("llm_server: ready")

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Free the server in a helper thread; False if loading, warm-up or teardown did not finish."""
        self.thread.join(timeout=2.0)
        if self.thread.is_alive():
            return False  # destroying the server under a running load or completion is unsafe
        teardown = threading.Thread(target=self._release, name="llm-teardown", daemon=True)
        teardown.start()
        teardown.join(timeout=timeout_s)
        return not teardown.is_alive()

    def _release(self) -> None:
        self.server = None  # the native destructor stops the HTTP threads and frees the model


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("VOICEBOT_LOG_LEVEL", "INFO"), format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if not args.model.is_file():
        logger.error("LLM model %s is missing: run `make models` (or scripts/fetch_models.py)", args.model)
        return 2
    # ggml's OpenMP threads spin while waiting by default. On a small machine shared with STT/TTS that
    # spinning starves everyone: measured 3 tok/s (spinning) vs 20-27 tok/s (passive) with SmolLM2 on
    # 2 busy cores. OpenMP reads this when the library loads, so it must be set before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp  # noqa: F401  (checked here for a clear message; loaded in the thread)
    except ImportError:
        logger.error("xllamacpp is not installed in this environment (it is pinned in requirements.lock)")
        return 2

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("llm_server: signal %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    loaded = LoadedServer(args)
    loaded.thread.start()
    while not stop.wait(0.5):
        if not loaded.thread.is_alive() and loaded.server is None:
            logger.error("llm_server: the model did not load")
            return 1
    if loaded.shutdown():
        logger.info("llm_server: stopped")
        return 0
    # Still loading, warming up, or the native teardown hangs: the OS frees everything on exit.
    logger.info("llm_server: stopped without tearing the server down")
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
