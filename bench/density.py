#!/usr/bin/env python3
"""Bot-worker density: N concurrent phone calls through the gateway into ONE worker process pinned to
ONE core, for our worker and for a naive pipecat bot (bench/naive_bot.py) in the same run.

    python bench/density.py [--levels 1,5,10,20,30] [--bots worker,naive] [--profile-at 20]

Processes: Redis, a real gateway (`python -m voicebot_gateway`), and the bot under test started with
`taskset -c <core>` (default: the last core); the gateway and this load generator run on the other
cores. Calls enter like Twilio's: a signed WebSocket upgrade on the gateway's /twilio/stream/{CallSid},
`connected`, `start`, then one 20 ms mu-law `media` frame every 20 ms on the clock (line noise when
the caller is silent, so a noise filter always has work). Marks are echoed when the audio before them
has "played" (a playout clock per call) and at once on `clear`, as Twilio does.

The caller is recorded speech (Piper's joe voice from the models folder, cached as .npy; the formant
voice when Piper is missing) with mid-sentence pauses (two VAD segments per turn, so Smart Turn has to
wait) and one barge-in per call. Agent: fake providers at fixed latencies (STT 100 ms, LLM first token
200 ms, TTS first audio 100 ms) with noise_filter: true and turn_detection: smart_turn_v3.

Per level it prints:
  reply p50/p95   end of the caller's last speech sample sent -> first bot audio frame received
  missed          caller turns with no bot reply within --reply-timeout seconds
  late            bot audio frames arriving more than 40 ms after the previous frame's audio ended
                  (a 20 ms frame: gap > 60 ms), as a share of bot frames
  barge p50/p95   caller speech start during bot speech -> `clear` received
  CPU             worker process CPU time / wall time over the level (1.0 = the pinned core is full)
  loop            the same for the event loop's thread alone (the rest: Smart Turn's thread)
  RSS             worker peak resident memory, and MB per call above the idle worker
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for package_dir in ("packages/core", "packages/devstack", "packages/simulation", "packages/emulator",
                    "services/bot-worker", "bench"):
    sys.path.insert(0, str(ROOT / package_dir))

import websockets  # noqa: E402

from voicebot_core.audio import pcm16_to_mulaw  # noqa: E402
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker  # noqa: E402
from voicebot_devstack.processes import Process, free_port, python, start_redis  # noqa: E402

AUTH_TOKEN = "density-auth-token"
TICKET_SECRET = "density-ticket-secret"
ACCOUNT_SID = "AC" + "d" * 32
FRAME = 160  # 20 ms at 8 kHz
FRAME_S = 0.020
CLK_TCK = os.sysconf("SC_CLK_TCK")
SILENCE_MULAW = b"\xff" * FRAME

# The caller's turns: lists of segments said with a mid-sentence pause between them; `barge` turns
# are said while the bot is replying (after `barge_after_s` of bot audio).
TURNS: list[dict] = [
    {"say": ["I would like to check", "the status of my order"]},
    {"say": ["my order number is", "four two seven"]},
    {"say": ["what are your opening hours on", "the weekend"]},
    {"say": ["wait, one more question"], "barge_after_s": 0.8},
    {"say": ["thank you, that is all for today"]},
]
# Every reply is the same ~4 s sentence (long enough to barge into); the fake STT's transcripts do not
# matter, so it gets plenty (recorded speech has word gaps a VAD may split on: segment counts vary).
REPLIES = [{"match": "", "reply": "Sure. Your order shipped yesterday from our warehouse and it should arrive "
                                   "tomorrow before noon. Is there anything else I can do for you?"}]
MID_PAUSE_S = 0.45  # inside a sentence: VAD stops (0.2 s), Smart Turn should say "not done yet"
THINK_S = 0.6  # after the bot finished playing, before the caller answers


def profiles_yaml() -> str:
    segments = ["I would like to check the status of my order"] * 1000
    profile = {
        "greeting": {"inbound": "Hello, thanks for calling. How can I help you today?"},
        "providers": "fake", "turn_detection": "smart_turn_v3", "noise_filter": True, "record": True,
        "idle_timeout_s": 30.0,
        "provider_options": {"utterances": segments, "replies": REPLIES, "stt_delay_s": 0.1,
                             "llm_ttfb_s": 0.2, "tts_ttfb_s": 0.1},
    }
    return json.dumps({"default_profile": "density", "numbers": {}, "profiles": {"density": profile}}, indent=1)


# ---------------------------------------------------------------- caller audio
def caller_audio(cache: Path) -> dict[str, bytes]:
    """Each segment's speech as 8 kHz mu-law, synthesized once and cached."""
    texts = sorted({s for turn in TURNS for s in turn["say"]})
    path = cache / "caller-speech.npz"
    if path.exists():
        stored = np.load(path)
        if all(t in stored for t in texts):
            return {t: pcm16_to_mulaw(stored[t]) for t in texts}
    try:
        from voicebot_emulator.neural_voice import PiperVoice

        voice = PiperVoice()
        pcm = {t: voice.synthesize(t, 8000) for t in texts}
        print("caller voice: Piper joe (recorded once, cached)", file=sys.stderr)
    except Exception as exc:  # no models: the formant voice
        from voicebot_simulation import formant_voice

        print(f"caller voice: formant ({exc})", file=sys.stderr)
        pcm = {t: formant_voice.synthesize(t, 8000) for t in texts}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **pcm)
    return {t: pcm16_to_mulaw(p) for t, p in pcm.items()}


def line_noise(seconds: float, seed: int) -> bytes:
    """Quiet line noise (~-55 dBFS): what a phone sends while the caller is silent."""
    rng = np.random.default_rng(seed)
    return pcm16_to_mulaw((rng.standard_normal(int(seconds * 8000)) * 60).astype(np.int16))


# ---------------------------------------------------------------- one call
async def until(predicate, step: float = 0.005) -> None:
    """Poll a condition on the phone's clock (bot audio arrival, playout time), as a phone would."""
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(step)


@dataclass
class CallResult:
    replies: list[float] = field(default_factory=list)
    missed: int = 0
    barge_ins: list[float] = field(default_factory=list)
    barge_missed: int = 0
    bot_frames: int = 0
    late_frames: int = 0
    error: str = ""
    send_lag: float = 0.0  # the load generator's worst lateness sending a frame


class Call:
    def __init__(self, gateway_port: int, speech: dict[str, bytes], noise: bytes, reply_timeout_s: float) -> None:
        self.call_sid = "CA" + uuid.uuid4().hex
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.url = f"ws://127.0.0.1:{gateway_port}/twilio/stream/{self.call_sid}"
        self.speech = speech
        self.noise = noise
        self.noise_pos = random.randrange(0, len(noise) - FRAME)
        self.reply_timeout_s = reply_timeout_s
        self.result = CallResult()
        self.queue = bytearray()  # caller audio still to send
        self.play_end = 0.0  # the phone's playout clock for bot audio
        self.last_frame_at = 0.0
        self.last_frame_s = 0.0
        self.burst_started_at = 0.0  # current bot burst (gap > 0.3 s or a clear starts a new one)
        self.clear_at: list[float] = []
        self.pending_marks: list[tuple[float, str]] = []
        self.sent_end_at = 0.0  # when the last queued caller sample was sent
        self.speech_started_at = 0.0
        self.chunk = 0
        self.ws = None
        self.sends: set[asyncio.Future] = set()

    def _media(self, payload: bytes) -> str:
        self.chunk += 1
        return (f'{{"event":"media","sequenceNumber":"{self.chunk + 1}","media":{{"track":"inbound",'
                f'"chunk":"{self.chunk}","timestamp":"{self.chunk * 20}",'
                f'"payload":"{base64.b64encode(payload).decode()}"}},"streamSid":"{self.stream_sid}"}}')

    async def run(self, max_s: float) -> CallResult:
        signer = SignatureChecker(AUTH_TOKEN)
        headers = {SIGNATURE_HEADER: signer.sign(self.url, {})}
        try:
            async with websockets.connect(self.url, additional_headers=headers, max_size=2**20,
                                          ping_interval=None, open_timeout=20) as ws:
                self.ws = ws
                await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
                await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                                          "start": {"accountSid": ACCOUNT_SID, "streamSid": self.stream_sid,
                                                    "callSid": self.call_sid, "tracks": ["inbound"],
                                                    "customParameters": {"direction": "inbound", "from": "+15550001111",
                                                                         "to": "+15557009999",
                                                                         "agent_profile": "density"},
                                                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                                    "channels": 1}}}))
                tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._recv_loop())]
                try:
                    await asyncio.wait_for(self._script(), max_s)
                except TimeoutError:
                    self.result.error = "call timed out"
                finally:
                    for task in tasks:
                        task.cancel()
                    with contextlib.suppress(Exception):
                        await ws.send(json.dumps({"event": "stop", "sequenceNumber": str(self.chunk + 2),
                                                  "streamSid": self.stream_sid,
                                                  "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid}}))
        except Exception as exc:  # a refused or broken stream counts as missed replies below
            self.result.error = f"{type(exc).__name__}: {exc}"
        return self.result

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self.queue:
                payload = bytes(self.queue[:FRAME])
                del self.queue[:FRAME]
                if len(payload) < FRAME:
                    payload += SILENCE_MULAW[: FRAME - len(payload)]
                if not self.queue:
                    self.sent_end_at = loop.time() + FRAME_S
            else:
                if self.noise_pos + FRAME > len(self.noise):
                    self.noise_pos = 0
                payload = self.noise[self.noise_pos:self.noise_pos + FRAME]
                self.noise_pos += FRAME
            await self.ws.send(self._media(payload))
            next_at += FRAME_S
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.result.send_lag = max(self.result.send_lag, -delay)
            if delay < -0.2:  # the generator fell behind (machine overloaded): do not burst
                next_at = loop.time()

    async def _recv_loop(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self.ws:
            now = loop.time()
            data = json.loads(message)
            event = data.get("event")
            if event == "media":
                seconds = len(data["media"]["payload"]) * 3 / 4 / 8000  # base64 of mu-law bytes
                self.result.bot_frames += 1
                gap = now - self.last_frame_at
                if gap > 0.3 or (self.clear_at and self.burst_started_at < self.clear_at[-1]):
                    self.burst_started_at = now
                elif gap > self.last_frame_s + 0.040:
                    self.result.late_frames += 1
                self.last_frame_at, self.last_frame_s = now, seconds
                self.play_end = max(self.play_end, now) + seconds
            elif event == "mark":
                self.pending_marks.append((self.play_end, data["mark"]["name"]))
                loop.call_at(max(now, self.play_end), self._echo_due_marks)
            elif event == "clear":
                self.clear_at.append(now)
                self.play_end = now
                self._echo_due_marks(force=True)

    def _echo_due_marks(self, force: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        due = [m for m in self.pending_marks if force or m[0] <= now + 0.001]
        self.pending_marks = [m for m in self.pending_marks if m not in due]
        for _, name in due:
            task = asyncio.ensure_future(self.ws.send(json.dumps(
                {"event": "mark", "sequenceNumber": str(self.chunk + 1), "streamSid": self.stream_sid,
                 "mark": {"name": name}})))
            self.sends.add(task)
            task.add_done_callback(self.sends.discard)

    def _bot_quiet_for(self, seconds: float) -> bool:
        now = asyncio.get_running_loop().time()
        return self.last_frame_at > 0 and now - max(self.play_end, self.last_frame_at) >= seconds

    async def _say(self, segments: list[str]) -> None:
        loop = asyncio.get_running_loop()
        audio = bytearray()
        for index, text in enumerate(segments):
            if index:
                audio += SILENCE_MULAW * int(MID_PAUSE_S / FRAME_S)
            audio += self.speech[text]
        self.speech_started_at = loop.time()
        self.queue += audio
        await until(lambda: not self.queue)
        await asyncio.sleep(max(0.0, self.sent_end_at - loop.time()))

    async def _await_reply(self, since: float) -> float | None:
        """First bot burst starting after `since`."""
        loop = asyncio.get_running_loop()
        deadline = since + self.reply_timeout_s
        await until(lambda: self.burst_started_at > since or loop.time() >= deadline)
        return self.burst_started_at - since if self.burst_started_at > since else None

    async def _script(self) -> None:
        loop = asyncio.get_running_loop()
        greeting = await self._await_reply(loop.time())
        if greeting is None:
            self.result.missed += len(TURNS)
            self.result.error = self.result.error or "no greeting"
            return
        for turn in TURNS:
            barge_after = turn.get("barge_after_s")
            if barge_after is None:
                await until(lambda: self._bot_quiet_for(THINK_S))
            else:  # interrupt the bot's reply (the previous turn's answer, still playing)
                await until(lambda after=barge_after: loop.time() - self.burst_started_at >= after)
                clears = len(self.clear_at)
                started = loop.time()
                say = asyncio.create_task(self._say(turn["say"]))
                await until(lambda n=clears, t0=started: len(self.clear_at) > n or loop.time() - t0 >= 2.0)
                if len(self.clear_at) > clears:
                    self.result.barge_ins.append(self.clear_at[clears] - started)
                else:
                    self.result.barge_missed += 1
                await say
                latency = await self._await_reply(self.sent_end_at)
                self._count_reply(latency)
                continue
            await self._say(turn["say"])
            latency = await self._await_reply(self.sent_end_at)
            self._count_reply(latency)
            if latency is None:
                continue
            if TURNS.index(turn) + 1 < len(TURNS) and TURNS[TURNS.index(turn) + 1].get("barge_after_s"):
                continue  # the next turn interrupts this reply
        await until(lambda: self._bot_quiet_for(0.5))

    def _count_reply(self, latency: float | None) -> None:
        if os.environ.get("DENSITY_DEBUG"):
            turn = len(self.result.replies) + self.result.missed
            print(f"{self.call_sid[:8]} turn {turn}: {latency}", file=sys.stderr)
        if latency is None:
            self.result.missed += 1
        else:
            self.result.replies.append(latency)


# ---------------------------------------------------------------- processes
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def main_thread_cpu_seconds(pid: int) -> float:
    """The event loop's thread (its id is the process's): the rest is Smart Turn's thread and ONNX's."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


@dataclass
class Bench:
    run_dir: Path
    core: int
    redis_url: str = ""
    prefix: str = ""
    gateway_port: int = 0
    procs: list[Process] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"VOICEBOT_DEV_MODE": "true",
                "VOICEBOT_REDIS_URL": self.redis_url, "VOICEBOT_REDIS_PREFIX": self.prefix,
                "VOICEBOT_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "VOICEBOT_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "VOICEBOT_TWILIO_API_BASE_URL": "http://127.0.0.1:9", "VOICEBOT_STREAM_TICKET_SECRET": TICKET_SECRET,
                "VOICEBOT_AGENT_PROFILES_PATH": str(self.run_dir / "profiles.yaml"),
                "VOICEBOT_LOG_LEVEL": "WARNING", "OTEL_SDK_DISABLED": "true", "HF_HUB_OFFLINE": "1",
                "VOICEBOT_STORAGE_DIR": str(self.run_dir / "call-data")}

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "profiles.yaml").write_text(profiles_yaml())
        self.redis_url, redis_proc = start_redis(self.run_dir)
        if redis_proc:
            self.procs.append(redis_proc)
        self.prefix = f"density-{uuid.uuid4().hex[:8]}"
        self.gateway_port = free_port()
        # DENSITY_GATEWAY_PYTHONPATH: run another checkout's gateway (e.g. while it is being edited)
        gateway_path = os.environ.get("DENSITY_GATEWAY_PYTHONPATH")
        gateway = Process("gateway", self.others(python("voicebot_gateway")), {
            **self.env(),
            **({"PYTHONPATH": f"{gateway_path}:{os.environ.get('PYTHONPATH', '')}"} if gateway_path else {}),
            "VOICEBOT_GATEWAY_HOST": "127.0.0.1", "VOICEBOT_GATEWAY_PORT": str(self.gateway_port),
            "VOICEBOT_GATEWAY_WORKER_ATTEMPTS": "1"},
            self.run_dir / "logs" / "gateway.log", f"http://127.0.0.1:{self.gateway_port}/healthz")
        self.procs.append(gateway.start())
        gateway.wait_healthy()

    def others(self, args: list[str]) -> list[str]:
        cores = sorted(os.sched_getaffinity(0) - {self.core}) or [self.core]
        return ["taskset", "-c", ",".join(map(str, cores)), *args]

    def start_bot(self, kind: str, capacity: int, worker_id: str, extra_env: dict[str, str]) -> Process:
        port = free_port()
        env = {**self.env(), "VOICEBOT_WORKER_ID": worker_id, "VOICEBOT_WORKER_HOST": "127.0.0.1",
               "VOICEBOT_WORKER_PORT": str(port), "VOICEBOT_WORKER_CAPACITY": str(capacity),
               "VOICEBOT_WORKER_ADVERTISE_URL": f"ws://127.0.0.1:{port}", **extra_env}
        naive = [sys.executable, str(ROOT / "bench" / "naive_bot.py")]
        module = naive if kind == "naive" else python("voicebot_worker")
        proc = Process(worker_id, ["taskset", "-c", str(self.core), *module], env,
                       self.run_dir / "logs" / f"{worker_id}.log", f"http://127.0.0.1:{port}/healthz").start()
        proc.wait_healthy(120)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)


async def run_level(bench: Bench, pid: int, calls: int, speech: dict[str, bytes], args: argparse.Namespace) -> dict:
    noise = line_noise(10.0, seed=calls)
    peak = rss_mb(pid)
    cpu0, loop0, t0 = cpu_seconds(pid), main_thread_cpu_seconds(pid), time.monotonic()
    stop = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def one(index: int) -> CallResult:
        await asyncio.sleep(index * args.stagger_s / max(1, calls))  # calls arrive spread out, not in one tick
        return await Call(bench.gateway_port, speech, noise, args.reply_timeout_s).run(args.call_timeout_s)

    sampler = asyncio.create_task(sample_rss())
    results = await asyncio.gather(*(one(i) for i in range(calls)))
    stop.set()
    await sampler
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(pid) - cpu0) / elapsed
    loop_cpu = (main_thread_cpu_seconds(pid) - loop0) / elapsed
    replies = [r for res in results for r in res.replies]
    barges = [b for res in results for b in res.barge_ins]
    frames = sum(r.bot_frames for r in results)
    errors = [r.error for r in results if r.error]
    return {"calls": calls, "turns": len(replies) + sum(r.missed for r in results), "replies": replies,
            "missed": sum(r.missed for r in results), "late": sum(r.late_frames for r in results) / max(1, frames),
            "barges": barges, "barge_missed": sum(r.barge_missed for r in results), "cpu": cpu, "loop_cpu": loop_cpu,
            "rss": peak, "errors": errors, "send_lag": max(r.send_lag for r in results)}


def row(name: str, r: dict, idle_rss: float) -> str:
    per_call = (r["rss"] - idle_rss) / r["calls"]
    return (f"{name:<7}{r['calls']:>5} {r['turns']:>5} {percentile(r['replies'], 50) * 1000:>7.0f} "
            f"{percentile(r['replies'], 95) * 1000:>7.0f} {r['missed']:>6} {r['late'] * 100:>6.2f}% "
            f"{percentile(r['barges'], 50) * 1000:>7.0f} {percentile(r['barges'], 95) * 1000:>7.0f} "
            f"{r['barge_missed']:>5} {r['cpu']:>6.2f} {r['rss']:>6.0f} {per_call:>6.1f}"
            + f"  loop {r.get('loop_cpu', 0):.2f}  gen lag {r['send_lag'] * 1000:.0f} ms"
            + (f"  ({len(r['errors'])} call errors: {r['errors'][0][:60]})" if r["errors"] else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,5,10,20,30", help="concurrent calls per level")
    parser.add_argument("--bots", default="worker,naive", help="worker, naive or both")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)), help="the bot's core")
    parser.add_argument("--stagger-s", type=float, default=4.0, help="spread the calls' starts over this long")
    parser.add_argument("--reply-timeout-s", type=float, default=6.0)
    parser.add_argument("--call-timeout-s", type=float, default=120.0)
    parser.add_argument("--profile-at", type=int, default=0, help="py-spy the worker at this level (py-spy on PATH)")
    parser.add_argument("--worker-env", action="append", default=[], help="KEY=VALUE for the worker (experiments)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    bots = [b for b in args.bots.split(",") if b]
    if len(os.sched_getaffinity(0)) < 2:
        print("needs 2 cores: one for the bot, one for the gateway and the callers", file=sys.stderr)
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_dir = ROOT / "run" / "density"
    speech = caller_audio(run_dir / "cache")
    bench = Bench(run_dir, args.core)
    os.sched_setaffinity(0, os.sched_getaffinity(0) - {args.core})
    extra = dict(kv.split("=", 1) for kv in args.worker_env)
    tables: dict[str, tuple[float, list[dict]]] = {}
    try:
        bench.start()
        for kind in bots:
            proc = bench.start_bot(kind, max(levels), f"density-{kind}", extra)
            try:
                # one unmeasured call first: loads the models, imports, fills the fake TTS's cache
                asyncio.run(run_level(bench, proc.pid, 1, speech, args))
                time.sleep(1.0)
                idle = rss_mb(proc.pid)
                rows = []
                for level in levels:
                    spy = None
                    if args.profile_at == level and kind == "worker":
                        spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--rate", "50",
                                                "--format", "raw", "--output", str(run_dir / f"profile-{level}.txt"),
                                                "--nonblocking", "--threads", "--duration", "40"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    result = asyncio.run(run_level(bench, proc.pid, level, speech, args))
                    with contextlib.suppress(Exception):
                        import httpx

                        turns = httpx.get(proc.health_url, timeout=2).json().get("smart_turn")
                        if turns:
                            print(f"  smart turn so far: {turns}", file=sys.stderr)
                    if spy is not None:
                        spy.wait(60)
                    rows.append(result)
                    print(row(kind, result, idle), file=sys.stderr, flush=True)
                    time.sleep(2.0)
                tables[kind] = (idle, rows)
            finally:
                proc.stop()
    finally:
        bench.stop()
    print(f"\nbot-worker density: one bot process pinned to core {args.core} ({os.cpu_count()} cores), "
          "calls through the gateway;\nfake providers STT 100 ms / LLM 200 ms / TTS 100 ms; "
          "noise filter + Silero VAD + Smart Turn v3")
    print(f"{'bot':<7}{'calls':>5} {'turns':>5} {'p50 ms':>7} {'p95 ms':>7} {'missed':>6} {'late':>7} "
          f"{'barge50':>7} {'barge95':>7} {'b-mis':>5} {'CPU':>6} {'RSS MB':>6} {'MB/cal':>6}")
    for kind, (idle, rows) in tables.items():
        print(f"{kind} idle RSS {idle:.0f} MB")
        for r in rows:
            print(row(kind, r, idle))
    if "worker" in tables and "naive" in tables:
        print("\nratio naive/worker CPU per call: " + "  ".join(
            f"{w['calls']}: {n['cpu'] / max(w['cpu'], 1e-9):.1f}x"
            for w, n in zip(tables["worker"][1], tables["naive"][1], strict=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
