"""Gateway relay benchmark: streams per gateway core and added round-trip latency.

    python bench/gateway.py [--streams 50,200,500] [--seconds 8] [--paths relay,asgi] [--profile DIR]

An echo bot-worker (its own process, registered in the Redis registry like a real worker, checking
the gateway's tickets) answers every inbound media frame with one outbound frame: a bot talking all
the time. N streams send Twilio's 20 ms media frames on the clock, first straight to the echo
worker ("direct"), then through a real gateway process (`python -m voicebot_gateway`: signature
check on the upgrade, slot reservation through the registry's Lua script, ticket), in the same run.
For each N it prints the round-trip p50/p99 of both, what the gateway adds, the gateway's CPU
(process CPU time / wall time over the measured window) and so streams per gateway core.

`--paths` picks what is measured against the direct connection: relay (the gateway as deployed),
asgi (the FastAPI route, VOICEBOT_GATEWAY_MEDIA_PATH=asgi, measured up to --asgi-max streams) and
nginx (Debian's nginx as a bare WebSocket proxy: the floor for moving the frames, with no
signature, reservation or re-attach). `--profile DIR` records the gateway with py-spy when it is
on PATH. `--pin` puts the gateway on a core of its own.

The load generator and the echo worker are raw asyncio protocols on uvloop, so that most of the
machine is left to the gateway. Traffic stays on 127.0.0.1; a private Redis key prefix is deleted
at the end. Needs Redis (VOICEBOT_REDIS_URL, default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
import uvloop

from voicebot_core.redis_client import connect as redis_connect
from voicebot_core.redis_keys import RedisKeys
from voicebot_core.registry import WorkerRegistry
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker
from voicebot_core.tickets import TICKET_HEADER, issue_ticket, verify_ticket
from voicebot_devstack.processes import PYTHONPATH, free_port

ROOT = Path(__file__).resolve().parents[1]
AUTH_TOKEN = "bench-auth-token"
TICKET_SECRET = "bench-ticket-secret"
WORKER_ID = "bench-echo"
FRAME_S = 0.020
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- frames
def _frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    """A WebSocket frame; masked with the all-zero key (valid, and free for the load generator)."""
    n = len(payload)
    mask = 0x80 if masked else 0
    if n < 126:
        head = bytes((0x80 | opcode, mask | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, mask | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, mask | 127)) + n.to_bytes(8, "big")
    return head + (b"\0\0\0\0" if masked else b"") + payload


def _frames(data: bytes, pos: int = 0) -> tuple[list[tuple[int, int, int]], int]:
    """Complete frames in data from pos: (opcode, payload start, end); and where the rest starts."""
    out = []
    n = len(data)
    while n - pos >= 2:
        b1 = data[pos + 1]
        length = b1 & 0x7F
        head = pos + 2
        if length == 126:
            if n - pos < 4:
                break
            length = int.from_bytes(data[head:head + 2], "big")
            head += 2
        elif length == 127:
            if n - pos < 10:
                break
            length = int.from_bytes(data[head:head + 8], "big")
            head += 8
        key = None
        if b1 & 0x80:
            key = data[head:head + 4]
            head += 4
        end = head + length
        if end > n:
            break
        out.append((data[pos] & 0x0F, head, end, key))
        pos = end
    return out, pos


def twilio_frames(call_sid: str, stream_sid: str) -> tuple[bytes, bytes, bytes, bytes]:
    """connected, start, one media frame (Twilio's compact wire form), stop: masked client frames."""
    payload = base64.b64encode(bytes([0xFF]) * 160).decode()
    connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = {"event": "start", "sequenceNumber": "1", "start": {
        "accountSid": "AC" + "0" * 32, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
        "customParameters": {"direction": "inbound"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}, "streamSid": stream_sid}
    media = {"event": "media", "sequenceNumber": "2", "media": {
        "track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload}, "streamSid": stream_sid}
    stop = {"event": "stop", "sequenceNumber": "3", "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_sid},
            "streamSid": stream_sid}
    return tuple(_frame(1, json.dumps(m, separators=(",", ":")).encode(), True)  # type: ignore[return-value]
                 for m in (connected, start, media, stop))


# ---------------------------------------------------------------- echo worker (own process)
class EchoConnection(asyncio.Protocol):
    """A bot-worker's stream endpoint that talks all the time: one media frame per media frame."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False
        self.reply = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        data = self.buf + data if self.buf else data
        self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            self._handshake(data[:end])
            data = data[end + 4:]
        frames, pos = _frames(data)
        replies = 0
        for opcode, start, end, key in frames:
            if opcode == 1:
                head = bytes(a ^ b for a, b in zip(data[start:start + 16], key * 4, strict=False))
                if head == b'{"event":"media"':
                    replies += 1
                elif head.startswith(b'{"event":"start"'):
                    text = bytes(a ^ b for a, b in zip(data[start:end], key * ((end - start) // 4 + 1), strict=False))
                    sid = json.loads(text)["streamSid"]
                    self.reply = _frame(1, json.dumps({"event": "media", "streamSid": sid, "media": {
                        "payload": base64.b64encode(bytes([0x7F]) * 160).decode()}},
                        separators=(",", ":")).encode(), False)
            elif opcode == 8:
                self.transport.write(_frame(8, data[start:start + 2], False))
                self.transport.close()
                return
            elif opcode == 9:  # the gateway pings a silent worker
                self.transport.write(_frame(10, bytes(a ^ b for a, b in zip(data[start:end], key * 32, strict=False)),
                                            False))
        if replies:
            self.transport.write(self.reply * replies)
        if pos < len(data):
            self.buf = data[pos:]

    def _handshake(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        call_sid = lines[0].split(" ")[1].rsplit("/", 1)[-1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        try:
            verify_ticket(TICKET_SECRET, headers.get(TICKET_HEADER.lower()), call_sid, WORKER_ID)
        except PermissionError:
            self.transport.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(
            headers["sec-websocket-key"].encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.upgraded = True


async def echo_worker(port: int, redis_url: str, prefix: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoConnection, "127.0.0.1", port, backlog=2048)
    client = redis_connect(redis_url)
    registry = WorkerRegistry(client, RedisKeys(prefix))
    await registry.register(WORKER_ID, f"ws://127.0.0.1:{port}", capacity=100_000)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    while not stop.is_set():
        await registry.heartbeat(WORKER_ID)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)
    await registry.deregister(WORKER_ID)
    server.close()
    await client.aclose()


# ---------------------------------------------------------------- load generator
class Stream(asyncio.Protocol):
    """One caller: sends a media frame every 20 ms, times each answer (answers come in order)."""

    def __init__(self, request: bytes, first: bytes, media: bytes, rtts: list[float]) -> None:
        self.request, self.first, self.media, self.rtts = request, first, media, rtts
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent: collections.deque[float] = collections.deque()
        self.buf = b""
        self.upgraded = False
        self.received = 0
        self.sends = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def send(self) -> None:
        self.sent.append(time.perf_counter())
        self.transport.write(self.media)
        self.sends += 1

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        data = self.buf + data if self.buf else data
        self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[:data.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self.opened.set_exception(RuntimeError(status.decode("latin-1")))
                return
            self.upgraded = True
            self.transport.write(self.first)
            self.opened.set_result(None)
            data = data[end + 4:]
        frames, pos = _frames(data)
        for opcode, start, end, _ in frames:
            if opcode == 1 and self.sent:
                self.rtts.append(now - self.sent.popleft())
                self.received += 1
            elif opcode == 9:  # the gateway pings a silent caller
                self.transport.write(_frame(10, data[start:end], True))
        if pos < len(data):
            self.buf = data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(RuntimeError(f"connection lost: {exc}"))


async def open_streams(n: int, target: str, port: int, rtts: list[float]) -> list[Stream]:
    loop = asyncio.get_running_loop()
    signer = SignatureChecker(AUTH_TOKEN)

    async def one(i: int) -> Stream:
        call_sid = f"CA{uuid.uuid4().hex}"
        stream_sid = f"MZ{uuid.uuid4().hex}"
        connected, start, media, _ = twilio_frames(call_sid, stream_sid)
        if target in ("direct", "nginx"):
            path = f"/streams/{call_sid}"
            extra = f"{TICKET_HEADER}: {issue_ticket(TICKET_SECRET, call_sid, WORKER_ID, ttl_s=600)}"
        else:
            path = f"/twilio/stream/{call_sid}"
            extra = f"{SIGNATURE_HEADER}: {signer.sign(f'ws://127.0.0.1:{port}{path}', {})}"
        request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{extra}\r\n\r\n").encode()
        _, stream = await loop.create_connection(lambda: Stream(request, connected + start, media, rtts),
                                                 "127.0.0.1", port)
        await asyncio.wait_for(stream.opened, 30)
        stream.stop = twilio_frames(call_sid, stream_sid)[3]  # type: ignore[attr-defined]
        return stream

    streams: list[Stream] = []
    for batch in range(0, n, 50):
        streams += await asyncio.gather(*(one(i) for i in range(batch, min(n, batch + 50))))
    return streams


async def drive(streams: list[Stream], seconds: float) -> float:
    """Frames on the clock for `seconds`: stream i sends at t0 + (i mod 20) ms + k * 20 ms.
    Returns the worst lag of the clock (the load generator falling behind)."""
    loop = asyncio.get_running_loop()
    slots = 20
    groups = [streams[i::slots] for i in range(slots)]
    t0 = loop.time() + 0.005
    total_ticks = int(seconds / FRAME_S * slots)
    done = loop.create_future()
    worst = 0.0

    def tick(k: int) -> None:
        nonlocal worst
        worst = max(worst, loop.time() - (t0 + k * FRAME_S / slots))
        if k >= total_ticks:
            done.set_result(None)
            return
        for stream in groups[k % slots]:
            stream.send()
        loop.call_at(t0 + (k + 1) * FRAME_S / slots, tick, k + 1)

    loop.call_at(t0, tick, 0)
    await done
    return worst


async def close_streams(streams: list[Stream], gateway: bool) -> None:
    """Hang up: stop and close, 50 calls every 50 ms (calls end spread out, not all in one instant)."""
    for i, s in enumerate(streams):
        if gateway:
            s.transport.write(s.stop)  # type: ignore[attr-defined]
        s.transport.write(_frame(8, (1000).to_bytes(2, "big"), True))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    for s in streams:
        s.transport.abort()


# ---------------------------------------------------------------- processes and measurement
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


NGINX_CONF = """
daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/nginx.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off; client_body_temp_path {dir}; proxy_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location /streams/ {{
      proxy_pass http://127.0.0.1:{echo};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3700s;
      proxy_buffering off;
      tcp_nodelay on;
    }}
  }}
}}
"""


def start_nginx(workdir: Path, echo_port: int) -> tuple[subprocess.Popen, int]:
    """nginx as a plain WebSocket proxy in front of the echo worker (one process): the cost of
    moving the frames alone, without signatures, reservation or re-attach."""
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port, echo=echo_port))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir)], stdout=subprocess.DEVNULL,
                            stderr=(workdir / "nginx.stderr").open("wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited early; see {workdir}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, port
        time.sleep(0.1)
    raise SystemExit("nginx did not start")


def start_gateway(path: str, redis_url: str, prefix: str, profiles: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "VOICEBOT_DEV_MODE": "true",
           "VOICEBOT_REDIS_URL": redis_url, "VOICEBOT_REDIS_PREFIX": prefix,
           "VOICEBOT_TWILIO_AUTH_TOKEN": AUTH_TOKEN, "VOICEBOT_STREAM_TICKET_SECRET": TICKET_SECRET,
           "VOICEBOT_GATEWAY_HOST": "127.0.0.1", "VOICEBOT_GATEWAY_PORT": str(port), "VOICEBOT_LOG_LEVEL": "WARNING",
           "VOICEBOT_AGENT_PROFILES_PATH": str(profiles), "VOICEBOT_GATEWAY_MEDIA_PATH": path,
           "VOICEBOT_TWILIO_API_BASE_URL": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "voicebot_gateway"], env=env, cwd=ROOT,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited early; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("gateway did not start")


class Target:
    """N streams to one place (the echo worker directly, or through a gateway), and what they measured."""

    def __init__(self, path: str, port: int, pid: int | None) -> None:
        self.path, self.port, self.pid = path, port, pid
        self.kind = "gateway" if path in ("relay", "asgi") else path  # direct, nginx
        self.rtts: list[float] = []
        self.samples: list[float] = []
        self.streams: list[Stream] = []
        self.cpu = self.wall = self.loadgen = self.lag = 0.0
        self.rss = 0.0

    def result(self, n: int) -> dict:
        sent = sum(s.sends for s in self.streams)
        answered = sum(s.received for s in self.streams)
        return {"n": n, "p50": percentile(self.samples, 0.5) * 1000, "p99": percentile(self.samples, 0.99) * 1000,
                "cores": self.cpu / self.wall, "loadgen": self.loadgen / self.wall, "lag": self.lag * 1000,
                "lost": sent - answered, "answered": answered / max(sent, 1), "rss": self.rss}


async def measure(n: int, targets: list[Target], seconds: float, warmup: float, slice_s: float = 1.0) -> None:
    """Every target's N streams are open at once; they take turns sending, one second each, so
    that the machine's other load (a shared 2-core box) falls on all of them alike."""
    for target in targets:
        target.streams = await open_streams(n, target.kind, target.port, target.rtts)
    for target in targets:  # warm-up, not counted
        await drive(target.streams, warmup / len(targets))
        await asyncio.sleep(0.05)
    for _ in range(max(1, round(seconds / slice_s))):
        for target in targets:
            target.rtts.clear()
            cpu0 = cpu_seconds(target.pid) if target.pid else 0.0
            own0 = time.process_time()
            target.lag = max(target.lag, await drive(target.streams, slice_s))
            await asyncio.sleep(0.05)  # the answers still in flight belong to this turn
            target.samples += target.rtts
            target.cpu += (cpu_seconds(target.pid) - cpu0) if target.pid else 0.0
            target.loadgen += time.process_time() - own0
            target.wall += slice_s
    for target in targets:
        target.rss = rss_mb(target.pid) if target.pid else 0.0
        await close_streams(target.streams, gateway=target.kind == "gateway")


async def measure_all(args: argparse.Namespace, echo_port: int,
                      gateways: dict[str, tuple[subprocess.Popen, int]]) -> list[tuple[str, dict, dict]]:
    rows: list[tuple[str, dict, dict]] = []
    for n in args.streams:
        direct = Target("direct", echo_port, None)
        targets = [direct] + [Target(path, port, proc.pid) for path, (proc, port) in gateways.items()
                              if not (path == "asgi" and n > args.asgi_max)]
        profilers = []
        if args.profile and shutil.which("py-spy"):
            args.profile.mkdir(parents=True, exist_ok=True)
            for target in targets[1:]:
                profilers.append(await asyncio.create_subprocess_exec(
                    "py-spy", "record", "--pid", str(target.pid), "--rate", "250", "--format", "raw",
                    "--duration", str(int(args.warmup + args.seconds * len(targets) + 5)), "--nonblocking",
                    "-o", str(args.profile / f"gateway-{target.path}-{n}.txt"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        await measure(n, targets, args.seconds, args.warmup)
        for profiler in profilers:
            await profiler.wait()
        for target in targets[1:]:
            rows.append((target.path, direct.result(n), target.result(n)))
            print_row(target.path, rows[-1][1], rows[-1][2])
    return rows


def run(args: argparse.Namespace) -> None:
    redis_url = os.environ.get("VOICEBOT_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bench-gw-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    profiles = workdir / "profiles.yaml"
    profiles.write_text("default_profile: support\nprofiles:\n  support: {providers: fake}\n")
    echo_port = free_port()
    echo = subprocess.Popen([sys.executable, __file__, "--echo-worker", str(echo_port), "--redis-url", redis_url,
                             "--prefix", prefix], env={**os.environ, "PYTHONPATH": PYTHONPATH}, cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    gateways: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready", "echo worker did not start"
        for path in args.paths:
            if path == "nginx":
                gateways[path] = start_nginx(workdir, echo_port)
            else:
                gateways[path] = start_gateway(path, redis_url, prefix, profiles, workdir / f"gateway-{path}.log")
        cores = sorted(os.sched_getaffinity(0))
        if args.pin and len(cores) > 1:
            for proc, _ in gateways.values():
                os.sched_setaffinity(proc.pid, cores[-1:])
            os.sched_setaffinity(echo.pid, cores[:-1])
            os.sched_setaffinity(0, cores[:-1])
        rows = uvloop.run(measure_all(args, echo_port, gateways))
    finally:
        for proc, _ in gateways.values():
            proc.send_signal(signal.SIGINT)
        echo.terminate()
        for proc, _ in gateways.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            if proc.poll() is None:
                proc.kill()
        echo.wait(10)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    print_table(rows, args.seconds)
    print(f"(gateway logs in {workdir})")


def print_row(path: str, direct: dict, via: dict) -> None:
    print(f"  measured {path} N={via['n']}: direct p50/p99 {direct['p50']:.2f}/{direct['p99']:.2f} ms, "
          f"via {path} {via['p50']:.2f}/{via['p99']:.2f} ms at {via['cores']:.2f} core "
          f"(load generator {via['loadgen']:.2f} core, worst clock lag {via['lag']:.1f} ms, "
          f"unanswered {via['lost']})", flush=True)


def print_table(rows: list[tuple[str, dict, dict]], seconds: float) -> None:
    print()
    print(f"Gateway relay: echo bot talking all the time, 20 ms frames, {seconds:.0f} s measured per row "
          f"(1 s turns with the direct streams), {os.cpu_count()} cores shared by load generator, echo worker, "
          "gateway and whatever else runs")
    header = ("| path | streams | direct p50 / p99 ms | via path p50 / p99 ms | added p50 / p99 ms "
              "| path cores | streams per core | RSS MB |")
    print(header)
    print("|---" * 8 + "|")
    for path, direct, via in rows:
        if via["answered"] < 0.99:  # it fell behind: what it carried, not what it was offered
            per_core = f"saturated: {via['answered']:.0%} of frames answered"
        else:
            per_core = f"{via['n'] / via['cores']:.0f}" if via["cores"] > 0 else "n/a"
        print(f"| {path} | {via['n']} | {direct['p50']:.2f} / {direct['p99']:.2f} | {via['p50']:.2f} / "
              f"{via['p99']:.2f} | {via['p50'] - direct['p50']:+.2f} / {via['p99'] - direct['p99']:+.2f} "
              f"| {via['cores']:.2f} | {per_core} | {via['rss']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="50,200,500", help="comma-separated stream counts")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of traffic before measuring")
    parser.add_argument("--paths", default="relay,asgi", help="gateway media paths: relay, asgi or both")
    parser.add_argument("--asgi-max", type=int, default=50, help="largest N tried on the asgi path")
    parser.add_argument("--pin", action="store_true",
                        help="gateway on the last core, load generator and echo worker on the others")
    parser.add_argument("--profile", type=Path, default=None, help="write py-spy profiles of the gateway here")
    parser.add_argument("--echo-worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_worker:
        uvloop.run(echo_worker(args.echo_worker, args.redis_url, args.prefix))
        return
    args.streams = [int(n) for n in args.streams.split(",")]
    args.paths = [p.strip() for p in args.paths.split(",")]
    run(args)


if __name__ == "__main__":
    main()
