"""Noise suppression for 8 kHz phone audio, at the pipeline's rate, on whole frames in numpy.

Why not pipecat's RNNoiseFilter: RNNoise is a 48 kHz model. pyrnnoise's bundled librnnoise (0.2, a
generic C build without SIMD) costs ~1 ms of CPU per 10 ms frame at 48 kHz on this machine whatever
the Python around it, plus the 8 <-> 48 kHz resampling: ~0.1 core per call (the worker profile at 4
calls had RNNoiseFilter at 36 % of samples). That alone rules out 20 calls per core.

This filter is a spectral gate made for the phone band: 40 ms sqrt-Hann windows with a 20 ms hop
(one 320-point real FFT per 20 ms frame), a noise floor tracked per bin (it follows the smoothed
power down at once and up slowly, ~3 dB per second, so speech does not raise it), and a
Wiener-style gain with over-subtraction, a -20 dB floor and temporal smoothing (no musical noise).
Every call's filter state is a row of one process-wide bank, and the frames of all calls that arrive
within 4 ms run as one batch (see SpectralGateBank). It delays the audio by one 20 ms frame.
"""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import FilterControlFrame, FilterEnableFrame

from voicebot_worker.batching import passes

HOP = 160  # 20 ms at 8 kHz
OVER_SUBTRACTION = 2.0
GAIN_FLOOR = 0.1  # -20 dB
FLOOR_RISE_PER_HOP = 10 ** (3.0 / 10 / 50)  # +3 dB per second
POWER_SMOOTHING = 0.6  # weight of the previous smoothed power
GAIN_SMOOTHING = 0.5  # weight of the previous gain when the gain rises
TICK_S = 0.004  # a frame waits at most this long for other calls' frames
MAX_SLOTS = 4096


class SpectralGateBank:
    """The filter state of every call in the process, one row per call, run as one batch per tick.

    Per call-frame numpy work is ~25 small array operations (~130 us here, mostly call overhead);
    stacked across calls the same operations cost ~6 us per call-frame at 20 calls."""

    def __init__(self, hop: int = HOP) -> None:
        self.hop = hop
        n = 2 * hop
        bins = hop + 1
        self.window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))
        self.prev = np.zeros((MAX_SLOTS, hop))
        self.tail = np.zeros((MAX_SLOTS, hop))
        self.power = np.zeros((MAX_SLOTS, bins))
        self.noise = np.zeros((MAX_SLOTS, bins))
        self.gain = np.ones((MAX_SLOTS, bins))
        self.started = np.zeros(MAX_SLOTS, dtype=bool)
        self._free = list(range(MAX_SLOTS - 1, -1, -1))
        self._pending: list[tuple[int, np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._scheduled = False

    def open(self) -> int:
        slot = self._free.pop()
        self.prev[slot] = 0.0
        self.tail[slot] = 0.0
        self.gain[slot] = 1.0
        self.started[slot] = False
        return slot

    def close(self, slot: int) -> None:
        self._free.append(slot)

    def submit(self, slot: int, hop: np.ndarray) -> asyncio.Future[np.ndarray]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((slot, hop, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(TICK_S, self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        try:
            outs = self.run_in_order([(slot, hop) for slot, hop, _ in pending])
        except Exception as exc:
            for _, _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), out in zip(pending, outs, strict=True):
            if not future.done():
                future.set_result(out)

    def run_in_order(self, items: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """Filter (slot, hop) pairs, a slot's hops in the order given: one batch per pass, a slot once per
        pass (a call whose frames queued up has several hops here)."""
        outs: list[np.ndarray | None] = [None] * len(items)
        for batch in passes([slot for slot, _ in items]):
            out = self.run(np.array([items[i][0] for i in batch]), np.stack([items[i][1] for i in batch]))
            for row, index in enumerate(batch):
                outs[index] = out[row]
        return outs  # type: ignore[return-value]

    def run(self, slots: np.ndarray, current: np.ndarray) -> np.ndarray:
        """One hop for each of `slots` (rows of `current`, float64): the filtered hop out."""
        frames = np.concatenate((self.prev[slots], current), axis=1)
        frames *= self.window
        self.prev[slots] = current
        spectrum = np.fft.rfft(frames, axis=1)
        power = np.abs(spectrum)
        power *= power
        smoothed = self.power[slots]
        smoothed *= POWER_SMOOTHING
        smoothed += (1 - POWER_SMOOTHING) * power
        noise = self.noise[slots]
        noise *= FLOOR_RISE_PER_HOP
        np.minimum(noise, smoothed, out=noise)
        fresh = ~self.started[slots]
        if fresh.any():  # a call's first hop starts the floor at its power
            smoothed[fresh] = power[fresh]
            noise[fresh] = power[fresh]
            self.started[slots[fresh]] = True
        self.power[slots] = smoothed
        self.noise[slots] = noise
        # gain = max(floor, 1 - k * noise / power); a rising gain moves halfway per hop (no musical noise)
        np.maximum(power, 1e-6, out=power)
        gain = np.divide(noise, power, out=power)
        gain *= -OVER_SUBTRACTION
        gain += 1.0
        np.maximum(gain, GAIN_FLOOR, out=gain)
        previous = self.gain[slots]
        gain = np.where(gain > previous, GAIN_SMOOTHING * previous + (1 - GAIN_SMOOTHING) * gain, gain)
        self.gain[slots] = gain
        spectrum *= gain
        shaped = np.fft.irfft(spectrum, n=frames.shape[1], axis=1)
        shaped *= self.window
        hop = current.shape[1]
        out = shaped[:, :hop] + self.tail[slots]
        self.tail[slots] = shaped[:, hop:]
        return out


_BANKS: dict[int, SpectralGateBank] = {}


def bank(hop: int) -> SpectralGateBank:
    if hop not in _BANKS:
        _BANKS[hop] = SpectralGateBank(hop)
    return _BANKS[hop]


class PhoneNoiseFilter(BaseAudioFilter):
    """A call's view of the process-wide SpectralGateBank (pipecat's audio_in_filter interface)."""

    def __init__(self) -> None:
        self._enabled = True
        self._bank: SpectralGateBank | None = None
        self._slot = -1
        self._pending = np.zeros(0)
        self._out = np.zeros(HOP)  # one hop of delay

    async def start(self, sample_rate: int) -> None:
        self._bank = bank(max(1, sample_rate // 50))
        self._slot = self._bank.open()
        self._out = np.zeros(self._bank.hop)

    async def stop(self) -> None:
        if self._bank is not None and self._slot >= 0:
            self._bank.close(self._slot)
            self._slot = -1

    async def process_frame(self, frame: FilterControlFrame) -> None:
        if isinstance(frame, FilterEnableFrame):
            self._enabled = frame.enable

    async def filter(self, audio: bytes) -> bytes:
        if not self.active or not audio:
            return audio
        hops = self.hops(audio)
        return self.assemble([await self._bank.submit(self._slot, hop) for hop in hops], len(audio) // 2)

    @property
    def active(self) -> bool:
        return self._enabled and self._bank is not None and self._slot >= 0

    @property
    def slot(self) -> int:
        return self._slot

    @property
    def bank(self) -> SpectralGateBank | None:
        return self._bank

    def hops(self, audio: bytes) -> list[np.ndarray]:
        """The whole hops `audio` completes (float64); the rest waits for the next frame."""
        hop = self._bank.hop if self._bank is not None else HOP
        data = np.frombuffer(audio, dtype=np.int16).astype(np.float64)
        if self._pending.size:
            data = np.concatenate((self._pending, data))
        count = data.size // hop
        self._pending = data[count * hop:]
        return [data[index * hop:(index + 1) * hop] for index in range(count)]

    def assemble(self, filtered: list[np.ndarray], samples: int) -> bytes:
        """The filtered hops back into `samples` int16 samples, one hop late."""
        out = np.concatenate([self._out, *filtered])
        result, self._out = out[:samples], out[samples:]
        np.clip(result, -32768, 32767, out=result)
        return result.astype(np.int16).tobytes()
