"""Silero VAD for every call of the process on one ONNX session, batched across calls on a short tick.

Why not pipecat's SileroVADAnalyzer: it loads its own session per call (~10 MB each) and hands every
20 ms frame to a thread of its own (`run_in_executor`), so each frame of each call pays a thread
hop for a 0.25 ms inference. Silero takes a batch ([B, 32 + 256] samples at 8 kHz, state
[2, B, 128]): per 32 ms window it costs 0.25 ms at B=1, 0.08 ms at B=8, 0.056 ms at B=32 (measured
here, one ONNX thread). So each call keeps only its recurrent state and context; windows that come
due within `TICK_S` of each other run as one batch, on the event loop (a batch of 30 is ~2 ms,
cheaper than the thread hops it replaces). The VAD state machine (start/stop/volume) is pipecat's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import lru_cache
from importlib import resources

import numpy as np
import onnxruntime
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from voicebot_worker.batching import passes

TICK_S = 0.016  # a window waits at most this long for other calls' windows (half a 32 ms window)
MAX_BATCH = 64
_RATE_SAMPLES = {8000: (256, 32), 16000: (512, 64)}  # window, context


@lru_cache(maxsize=1)
def shared_silero_session() -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    path = str(resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx"))
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


class CallVADState:
    """One call's Silero recurrent state and audio context (what SileroOnnxModel keeps per instance)."""

    def __init__(self, context: int = 32) -> None:
        self.context_size = context
        self.reset_states()

    def reset_states(self, batch_size: int = 1) -> None:
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, self.context_size), dtype=np.float32)


class SileroBatcher:
    """Scores windows of many calls in one ONNX run per tick."""

    def __init__(self) -> None:
        self._pending: dict[int, list[tuple[CallVADState, np.ndarray, asyncio.Future[float]]]] = {}
        self._scheduled = False
        self.batches = 0
        self.windows = 0

    def score(self, call: CallVADState, window: np.ndarray, sample_rate: int) -> asyncio.Future[float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        queue = self._pending.setdefault(sample_rate, [])
        queue.append((call, window, future))
        if len(queue) >= MAX_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_later(TICK_S, self._flush)
        return future

    def score_now(self, items: list[tuple[CallVADState, np.ndarray]], sample_rate: int) -> list[float]:
        """Score windows now, a call's windows in the order given (one ONNX run per pass, a call once per
        pass: its state is recurrent)."""
        scores: list[float] = [0.0] * len(items)
        for batch in passes([id(call) for call, _ in items]):
            out = self._run([(items[i][0], items[i][1], None) for i in batch], sample_rate)
            for row, index in enumerate(batch):
                scores[index] = float(out[row])
        return scores

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for sample_rate, items in pending.items():
            try:
                confidences = self._run(items, sample_rate)
            except Exception as exc:  # a broken batch must not hang the calls waiting on it
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), confidence in zip(items, confidences, strict=True):
                if not future.done():
                    future.set_result(float(confidence))

    def _run(self, items: list[tuple[CallVADState, np.ndarray, asyncio.Future[float] | None]],
             sample_rate: int) -> np.ndarray:
        context = items[0][0].context_size
        x = np.concatenate([np.concatenate((call.context, window[None, :]), axis=1) for call, window, _ in items])
        state = np.concatenate([call.state for call, _, _ in items], axis=1)
        out, new_state = shared_silero_session().run(
            None, {"input": x, "state": state, "sr": np.array(sample_rate, dtype=np.int64)})
        for index, (call, _, _) in enumerate(items):
            call.state = new_state[:, index:index + 1, :]
            call.context = x[index:index + 1, -context:]
        self.batches += 1
        self.windows += len(items)
        return out[:, 0]


_BATCHER = SileroBatcher()


def batcher() -> SileroBatcher:
    return _BATCHER


class BatchedSileroVAD(SileroVADAnalyzer):
    """pipecat's Silero VAD analyzer (same thresholds, smoothing and model resets), scored by the
    process-wide batcher on the event loop instead of its own session on its own thread."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._executor.shutdown(wait=False)  # the base class made a thread we never use
        self._model = CallVADState()  # type: ignore[assignment]  # reset_states() is all the base calls
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._scores: deque[float] = deque()
        # Seconds of windows scored as voice since the VAD was last quiet: how long the caller has
        # actually been talking in the current burst (turn_start.py lets only >= 0.3 s interrupt the bot).
        self.voiced_s = 0.0
        shared_silero_session()

    def set_sample_rate(self, sample_rate: int) -> None:
        super().set_sample_rate(sample_rate)
        self._model = CallVADState(_RATE_SAMPLES[self.sample_rate][1])  # type: ignore[assignment]

    async def analyze_audio(self, buffer: bytes) -> VADState:
        scores = [await _BATCHER.score(self._model, window, self.sample_rate)  # type: ignore[arg-type]
                  for window in self.windows(buffer)]
        return self.state_after(buffer, scores)

    def windows(self, buffer: bytes) -> list[np.ndarray]:
        """The model windows `buffer` completes, to be scored in order (the state machine cuts the same)."""
        return self.windows_per_frame([buffer])[0]

    def windows_per_frame(self, buffers: list[bytes]) -> list[list[np.ndarray]]:
        """For frames analysed one after the other, the windows each completes."""
        need = self._vad_frames_num_bytes
        joined = self._vad_buffer + b"".join(buffers)
        result, start, end = [], 0, len(self._vad_buffer)
        for buffer in buffers:
            end += len(buffer)
            frame_windows = []
            while start + need <= end:
                window = np.frombuffer(joined, dtype=np.int16, count=need // 2, offset=start).astype(np.float32)
                window *= 1.0 / 32768.0
                frame_windows.append(window)
                start += need
            result.append(frame_windows)
        return result

    def state_after(self, buffer: bytes, scores: list[float]) -> VADState:
        """pipecat's state machine on `buffer`, taking the scores of its windows in order."""
        self._scores.extend(scores)
        state = self._run_analyzer(buffer)
        if state == VADState.QUIET:
            self.voiced_s = 0.0
        return state

    @property
    def call_state(self) -> CallVADState:
        return self._model  # type: ignore[return-value]

    def voice_confidence(self, buffer: bytes) -> float:
        confidence = self._scores.popleft() if self._scores else 0.0
        self._maybe_reset_model(confidence)
        if confidence >= self._params.confidence:
            self.voiced_s += len(buffer) / (2 * self.sample_rate)
        return confidence
