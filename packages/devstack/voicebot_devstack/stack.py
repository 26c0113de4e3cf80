"""The platform on one machine: Redis, the Twilio emulator, gateway, bot-workers and, when
asked, the local LLM server and the dialer (API + Celery worker).

By default the services play against the emulator with a throwaway account. Given your Twilio
account (`account_sid`, `auth_token`, `twilio_api_base_url`: environment.LocalConfig) they talk to
that Twilio instead, and a `public_base_url` (an https tunnel to the gateway) is the URL Twilio
signs and streams to; the emulator still runs and reaches the gateway through that URL too.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from voicebot_core.profiles import AgentProfiles
from voicebot_devstack.load_balancer import load_balancer_process
from voicebot_devstack.processes import ROOT, Process, free_port, python, start_redis

ACCOUNT_SID = "AC" + "d" * 32


@dataclass
class StackConfig:
    run_dir: Path = ROOT / "run"
    workers: int = 1
    worker_capacity: int = 4
    profiles_path: Path = ROOT / "config" / "agent-profiles.yaml"
    llm_model: Path | None = None  # a GGUF file: start the local LLM server with it
    dialer: bool = False
    fixed_ports: bool = False  # 8060/8080/8090+/8070/9808: easy to type for calls by hand
    redis_prefix: str = "voicebot"
    extra_env: dict[str, str] = field(default_factory=dict)
    dialer_metrics_port: int | None = None  # the dialer Celery worker's /metrics; None: 9808 or free; 0: off
    account_sid: str = ACCOUNT_SID
    auth_token: str = ""  # empty: a random one (the emulator's)
    twilio_api_base_url: str | None = None  # None: the stack's emulator
    public_base_url: str = ""  # the gateway as Twilio reaches it (a tunnel); empty: its local URL
    own_redis: bool = False  # a redis-server of our own (AOF on) even when one answers on 6379: fault runs restart it
    gateways: int = 1  # more than one: gateway-0.. behind haproxy on loopback, whose URL is urls["gateway"]


@dataclass
class Stack:
    config: StackConfig
    redis_url: str = ""
    processes: dict[str, Process] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    ticket_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    api_key: str = field(default_factory=lambda: "vb_" + secrets.token_hex(12))

    def __post_init__(self) -> None:
        if self.config.auth_token:
            self.auth_token = self.config.auth_token

    @property
    def twilio_api_base_url(self) -> str:
        return self.config.twilio_api_base_url or self.urls["emulator"]

    @property
    def public_url(self) -> str:
        """The gateway's URL as Twilio (or the emulator) reaches it."""
        return self.config.public_base_url or self.urls["gateway"]

    @property
    def storage_dir(self) -> Path:
        """The filesystem object store every worker and the dialer share (recordings, transcripts)."""
        return self.config.run_dir / "call-data"

    def _port(self, fixed: int) -> int:
        return fixed if self.config.fixed_ports else free_port()

    def common_env(self) -> dict[str, str]:
        return {
            # a development stack: the dialer's webhook secret keeps its public development default,
            # which the services refuse outside development mode
            "VOICEBOT_DEV_MODE": "true",
            "VOICEBOT_REDIS_URL": self.redis_url,
            "VOICEBOT_REDIS_PREFIX": self.config.redis_prefix,
            "VOICEBOT_TWILIO_ACCOUNT_SID": self.config.account_sid,
            "VOICEBOT_TWILIO_AUTH_TOKEN": self.auth_token,
            "VOICEBOT_TWILIO_API_BASE_URL": self.twilio_api_base_url,
            "VOICEBOT_STREAM_TICKET_SECRET": self.ticket_secret,
            "VOICEBOT_AGENT_PROFILES_PATH": str(self.config.profiles_path),
            "VOICEBOT_STORAGE_BACKEND": "filesystem",
            "VOICEBOT_STORAGE_DIR": str(self.storage_dir),
            # Celery's keys get the same namespace, so stacks sharing one Redis never swap tasks
            "VOICEBOT_DIALER_BROKER_PREFIX": f"{self.config.redis_prefix}:celery:",
            "VOICEBOT_LOG_LEVEL": os.environ.get("VOICEBOT_LOG_LEVEL", "INFO"),
            "HF_HUB_OFFLINE": "1",
            **self.config.extra_env,
        }

    def start(self, detach: bool = False) -> Stack:
        run = self.config.run_dir
        logs = run / "logs"
        self.redis_url, redis_proc = start_redis(run, own=self.config.own_redis)
        if redis_proc:
            self.processes["redis"] = redis_proc
        ports = {"emulator": self._port(8060), "gateway": self._port(8080), "dialer": self._port(8070)}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        env = self.common_env()
        to_start: list[Process] = []
        if self.config.llm_model:
            llm_port = self._port(8000)
            self.urls["llm"] = f"http://127.0.0.1:{llm_port}"
            to_start.append(Process("llm-server", python("voicebot_worker.llm_server", "--model",
                                    str(self.config.llm_model), "--port", str(llm_port)), env,
                                    logs / "llm-server.log", f"{self.urls['llm']}/health"))
        to_start.append(Process("emulator", python("voicebot_emulator", "serve"), {
            **env, "VOICEBOT_EMULATOR_PORT": str(ports["emulator"]),
            "VOICEBOT_EMULATOR_VOICE_URL": f"{self.public_url}/twilio/voice",
            "VOICEBOT_EMULATOR_STATUS_CALLBACK_URL": f"{self.public_url}/twilio/status",
            "VOICEBOT_EMULATOR_RECORDINGS_DIR": str(run / "emulator"),
            "VOICEBOT_EMULATOR_SOFTPHONE_AGENT_PROFILES": ",".join(self.profile_names()),
        }, logs / "emulator.log", f"{self.urls['emulator']}/healthz"))
        gateway_env = {**env, "VOICEBOT_GATEWAY_HOST": "127.0.0.1", "VOICEBOT_GATEWAY_PORT": str(ports["gateway"])}
        if self.config.public_base_url:  # the URL Twilio signs and the wss:// stream URL in our TwiML
            gateway_env["VOICEBOT_GATEWAY_PUBLIC_BASE_URL"] = self.config.public_base_url
        to_start.extend(self.gateway_processes(gateway_env, ports["gateway"]))
        for index in range(self.config.workers):
            to_start.append(self.worker_process(index))
        if self.config.dialer:
            dialer_env = {**env, "VOICEBOT_DIALER_PORT": str(ports["dialer"]),
                          "VOICEBOT_DIALER_API_KEYS": self.api_key,
                          "VOICEBOT_GATEWAY_PUBLIC_BASE_URL": self.public_url}
            to_start.append(Process("dialer-api", python("voicebot_dialer.api"), dialer_env,
                                    logs / "dialer-api.log", f"{self.urls['dialer']}/healthz"))
            to_start.append(self.dialer_worker_process(dialer_env))
        try:
            for proc in to_start:
                self.processes[proc.name] = proc.start(detach)
            for proc in to_start:
                proc.wait_healthy(timeout=120 if proc.name == "llm-server" else 60)
        except Exception:
            self.stop()
            raise
        self.write_state()
        return self

    def profile_names(self) -> list[str]:
        """The agent profiles the softphone page offers; none when the file does not load (the
        gateway, loading it too, says why)."""
        try:
            return AgentProfiles.load(self.config.profiles_path).names
        except (OSError, ValueError, yaml.YAMLError):
            return []

    def dialer_worker_process(self, dialer_env: dict[str, str]) -> Process:
        """The dialer's Celery worker as the chart runs it: the prefork pool through
        `python -m voicebot_dialer.worker`, whose metrics port serves every pool process's counters
        (prometheus_client multiprocess mode, in a directory of the run dir emptied at start)."""
        metrics_port = self.config.dialer_metrics_port
        if metrics_port is None:
            metrics_port = self._port(9808)
        health_url = None
        if metrics_port:
            self.urls["dialer-worker-metrics"] = f"http://127.0.0.1:{metrics_port}"
            health_url = f"{self.urls['dialer-worker-metrics']}/metrics"  # served once the worker is ready
        env = {**dialer_env, "VOICEBOT_DIALER_METRICS_HOST": "127.0.0.1",
               "VOICEBOT_DIALER_METRICS_PORT": str(metrics_port),
               "PROMETHEUS_MULTIPROC_DIR": str(self.config.run_dir / "dialer-worker-metrics")}
        return Process("dialer-worker", python(
            "voicebot_dialer.worker", "-Q", "dialer", "--pool", "prefork", "--concurrency", "2",
            "--loglevel", "INFO"), env, self.config.run_dir / "logs" / "dialer-worker.log", health_url)

    def gateway_processes(self, gateway_env: dict[str, str], port: int) -> list[Process]:
        """The gateway on `port`; several: each on its own port, haproxy on `port` round-robin in front."""
        logs = self.config.run_dir / "logs"
        if self.config.gateways <= 1:
            return [Process("gateway", python("voicebot_gateway"), gateway_env, logs / "gateway.log",
                            f"{self.urls['gateway']}/healthz")]
        backends = {f"gateway-{index}": free_port() for index in range(self.config.gateways)}
        gateways = []
        for name, backend_port in backends.items():
            self.urls[name] = f"http://127.0.0.1:{backend_port}"
            gateways.append(Process(name, python("voicebot_gateway"),
                                    {**gateway_env, "VOICEBOT_GATEWAY_PORT": str(backend_port)},
                                    logs / f"{name}.log", f"{self.urls[name]}/healthz"))
        return [*gateways, load_balancer_process(self.config.run_dir, port, backends)]

    def worker_process(self, index: int, capacity: int | None = None) -> Process:
        port = self._port(8090 + index)
        name = f"bot-worker-{index}"
        self.urls[name] = f"http://127.0.0.1:{port}"
        cap = str(capacity or self.config.worker_capacity)
        env = {**self.common_env(), "VOICEBOT_WORKER_ID": name, "VOICEBOT_WORKER_HOST": "127.0.0.1",
               "VOICEBOT_WORKER_PORT": str(port), "VOICEBOT_WORKER_CAPACITY": cap,
               "VOICEBOT_WORKER_ADVERTISE_URL": f"ws://127.0.0.1:{port}",
               "VOICEBOT_WORKER_LLM_BASE_URL": f"{self.urls.get('llm', 'http://127.0.0.1:8000')}/v1"}
        return Process(name, python("voicebot_worker"), env, self.config.run_dir / "logs" / f"{name}.log",
                       f"{self.urls[name]}/healthz")

    def add_worker(self, index: int, capacity: int | None = None) -> Process:
        proc = self.worker_process(index, capacity).start()
        self.processes[proc.name] = proc
        proc.wait_healthy()
        return proc

    def write_state(self) -> None:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        twilio = {"account_sid": self.config.account_sid, "api_base_url": self.twilio_api_base_url,
                  "emulator": self.config.twilio_api_base_url is None, "public_base_url": self.public_url,
                  "profiles_path": str(self.config.profiles_path)}
        if self.config.twilio_api_base_url is None and not self.config.auth_token:
            twilio["auth_token"] = self.auth_token  # the emulator's throwaway token (`voicebot numbers`); never yours
        state = {"urls": self.urls, "redis_url": self.redis_url, "api_key": self.api_key, "twilio": twilio,
                 "pids": {name: proc.pid for name, proc in self.processes.items()}}
        (self.config.run_dir / "stack.json").write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        # workers and gateway first (they drain), Redis last
        order = sorted(self.processes.values(), key=lambda p: p.name == "redis")
        for proc in order:
            proc.stop()
