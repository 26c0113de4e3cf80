#!/usr/bin/env python3
"""make test-images: the stack run from the built images under the chart's own pod specs.

The chart is rendered with charts/voicebot/ci/images-values.yaml and its Deployments (gateway,
bot-worker, dialer API, dialer worker) are run by `podman kube play` as they are: the same
containers, commands, environment, security contexts (read-only root, uid 10001, no
capabilities), volumes, ConfigMap and Secret references. Redis and the Twilio emulator run as
containers beside them. Everything is on the host network, on loopback ports of its own. Four
edits to the rendered pods, all for podman: no `ports` (on the host network podman takes them
for port mappings, which it refuses), POD_IP set to 127.0.0.1 (podman 4.3 has no status.podIP;
on the host network that is the pod's address), `$(VAR)` references in env values expanded
as Kubernetes does (podman leaves them as they are), and Secret volumes (the dialer API's keys
file) turned into ConfigMap volumes holding the same files (podman 4.3 has no Secret volumes).

Then, through the containers only:
  1. health, readiness and /metrics of every service;
  2. an inbound call: the emulator's scripted caller phones the number, the gateway answers with
     TwiML, the stream goes to the bot-worker, three turns, the call completes;
  3. an outbound call: a dial job over the dialer API, placed by the dialer worker through the
     emulator's REST API with the twilio SDK, greeting with the job's variable, completed; the
     placement, counted in a pool process of the worker's prefork pool, shows on its /metrics;
  4. a drain: SIGTERM to the bot-worker container during a live call; the worker marks itself
     draining, the call goes on to its end, then the container exits 0.

Needs podman (`make images` installs it) and the images `make images` built. Exit status 0 when
every step passed. Run with the dev venv's Python (httpx, redis, yaml).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from voicebot_core.calls import CallRecordReader
from voicebot_core.redis_keys import RedisKeys

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "voicebot"
VALUES = CHART / "ci" / "images-values.yaml"
RELEASE = "vbimages"
PREFIX = f"{RELEASE}-"  # of every container and secret this script makes
REDIS_IMAGE = "localhost/voicebot/redis-test:bookworm"
EMULATOR_PORT = 18060
REDIS_PORT = 16379
CALLER = "+15550001111"
INBOUND_NUMBER = "+15557000001"  # images-three-turns in images-values.yaml
OUTBOUND_NUMBER = "+15557000006"  # images-outbound


def log(message: str) -> None:
    print(f"test-images: {message}", flush=True)


def run(*args: str, check: bool = True, capture: bool = True, timeout: float = 600) -> str:
    result = subprocess.run(args, capture_output=capture, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout if capture else ""


def wait_for(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (httpx.HTTPError, redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def expand_env(value: str, defined: dict[str, str]) -> str:
    """$(NAME) replaced by the value of an earlier variable NAME, as the kubelet does."""
    return re.sub(r"\$\((\w+)\)", lambda m: defined.get(m[1], m[0]), value)


def secret_volumes_as_configmaps(pod: dict[str, Any], secrets: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Turn the pod's Secret volumes into ConfigMap volumes (podman 4.3 mounts no Secret) holding the
    same files, named by the items' paths (or by the keys without items); returns those ConfigMaps."""
    configmaps = []
    for volume in pod.get("volumes", []):
        if "secret" not in volume:
            continue
        source = volume.pop("secret")
        data = secrets[source["secretName"]]
        items = source.get("items") or [{"key": key, "path": key} for key in data]
        name = f"{source['secretName']}-{volume['name']}"
        configmaps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                           "data": {item["path"]: data[item["key"]] for item in items}})
        volume["configMap"] = {"name": name}
    return configmaps


class Stack:
    """The rendered chart and the containers run from it."""

    def __init__(self, work: Path, helm: str, tag: str) -> None:
        self.work = work
        self.helm = helm
        self.tag = tag
        self.documents: list[dict[str, Any]] = []
        self.kube_file = work / "deployments.yaml"
        self.secrets: list[str] = []

    # --- the chart -------------------------------------------------------------------------------
    def render(self) -> None:
        out = run(self.helm, "template", RELEASE, str(CHART), "-f", str(VALUES), "--namespace", "voicebot",
                  "--skip-tests")
        self.documents = [d for d in yaml.safe_load_all(out) if d]
        self.values = yaml.safe_load(VALUES.read_text())

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.documents if d["kind"] == kind]

    def deployment(self, component: str) -> dict[str, Any]:
        return next(d for d in self.of_kind("Deployment")
                    if d["metadata"]["labels"].get("app.kubernetes.io/component") == component)

    def env(self, component: str, name: str) -> str:
        container = self.deployment(component)["spec"]["template"]["spec"]["containers"][0]
        for item in container.get("env", []):
            if item["name"] == name:
                if "value" in item:
                    return item["value"]
                ref = item["valueFrom"]["secretKeyRef"]
                secret = next(s for s in self.of_kind("Secret") if s["metadata"]["name"] == ref["name"])
                data = secret.get("stringData") or {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
                return data[ref["key"]]
        raise KeyError(f"{component} has no env {name}")

    # --- containers --------------------------------------------------------------------------------
    def start(self) -> None:
        # Secrets: podman looks secretKeyRef names up among its own secrets, whose content is the
        # Secret's data map as JSON, values base64-encoded.
        plain: dict[str, dict[str, str]] = {}
        for secret in self.of_kind("Secret"):
            name = secret["metadata"]["name"]
            data = secret.get("data") or {k: base64.b64encode(v.encode()).decode()
                                          for k, v in secret.get("stringData", {}).items()}
            plain[name] = {k: base64.b64decode(v).decode() for k, v in data.items()}
            path = self.work / f"secret-{name}.json"
            path.write_text(json.dumps(data))
            run("podman", "secret", "rm", name, check=False)
            run("podman", "secret", "create", name, str(path))
            self.secrets.append(name)
        run("podman", "run", "-d", "--rm", "--name", f"{PREFIX}redis", "--network", "host", REDIS_IMAGE,
            "redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        gateway_port = self.values["gateway"]["port"]
        run("podman", "run", "-d", "--name", f"{PREFIX}emulator", "--network", "host",
            "-e", f"VOICEBOT_TWILIO_ACCOUNT_SID={self.values['twilio']['accountSid']}",
            "-e", f"VOICEBOT_TWILIO_AUTH_TOKEN={self.values['secrets']['twilioAuthToken']}",
            "-e", "VOICEBOT_EMULATOR_HOST=127.0.0.1", "-e", f"VOICEBOT_EMULATOR_PORT={EMULATOR_PORT}",
            "-e", f"VOICEBOT_EMULATOR_VOICE_URL=http://127.0.0.1:{gateway_port}/twilio/voice",
            "-e", f"VOICEBOT_EMULATOR_INCOMING_NUMBERS={INBOUND_NUMBER}",
            f"voicebot/emulator:{self.tag}")
        wanted = ("gateway", "bot-worker", "dialer-api", "dialer-worker")
        deployments = [self.deployment(c) for c in wanted]
        configmaps = [*self.of_kind("ConfigMap")]
        for deployment in deployments:
            configmaps += secret_volumes_as_configmaps(deployment["spec"]["template"]["spec"], plain)
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                # On the host network podman refuses port mappings, and containerPort is one to it
                # (to Kubernetes it is informational): the processes listen on their ports anyway.
                container.pop("ports", None)
                defined: dict[str, str] = {}
                for item in container.get("env", []):
                    # podman 4.3 has no status.podIP; on the host network the pod's address is ours
                    if item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
                        item.pop("valueFrom")
                        item["value"] = "127.0.0.1"
                    # nor does it expand $(VAR) references to earlier variables, as Kubernetes does
                    if "value" in item:
                        item["value"] = expand_env(str(item["value"]), defined)
                        defined[item["name"]] = item["value"]
        docs = [*configmaps, *deployments]
        self.kube_file.write_text(yaml.safe_dump_all(docs))
        run("podman", "kube", "play", "--network", "host", str(self.kube_file), timeout=300)

    def container(self, component: str) -> str:
        name = self.deployment(component)["metadata"]["name"]
        container = self.deployment(component)["spec"]["template"]["spec"]["containers"][0]["name"]
        return f"{name}-pod-0-{container}"

    def logs(self) -> str:
        names = [n for n in run("podman", "ps", "-a", "--format", "{{.Names}}", check=False).split()
                 if n.startswith(PREFIX)]
        tails = (subprocess.run(["podman", "logs", "--tail", "40", n], capture_output=True, text=True, check=False)
                 for n in names)
        return "\n".join(f"--- {n}\n{t.stdout}{t.stderr}" for n, t in zip(names, tails, strict=True))

    def stop(self) -> None:
        """Remove every pod, container and secret of this script (also what an interrupted run left)."""
        if self.kube_file.exists():
            run("podman", "kube", "down", str(self.kube_file), check=False, timeout=300)
        for pod in run("podman", "pod", "ls", "--format", "{{.Name}}", check=False).split():
            if pod.startswith(PREFIX):
                run("podman", "pod", "rm", "-f", "-t", "2", pod, check=False, timeout=120)
        for name in ("emulator", "redis"):
            run("podman", "rm", "-f", "-t", "2", f"{PREFIX}{name}", check=False)
        for secret in self.secrets:
            run("podman", "secret", "rm", secret, check=False)


# --- the checks ---------------------------------------------------------------------------------------
def check_endpoints(stack: Stack) -> None:
    v = stack.values
    endpoints = {
        "gateway": (v["gateway"]["port"], ["/healthz", "/readyz", "/metrics"]),
        "bot-worker": (v["botWorker"]["port"], ["/healthz", "/readyz", "/metrics"]),
        "dialer-api": (v["dialerApi"]["port"], ["/healthz", "/readyz", "/metrics"]),
        "dialer-worker": (v["dialerWorker"]["metricsPort"], ["/metrics"]),
    }
    for component, (port, paths) in endpoints.items():
        for path in paths:
            url = f"http://127.0.0.1:{port}{path}"
            response = wait_for(f"{component} {path}", lambda url=url: _ok(url), 180)
            if path == "/metrics" and "# TYPE" not in response.text:
                raise RuntimeError(f"{component} /metrics is not Prometheus text")
        log(f"{component}: {', '.join(paths)} answer 200")


def _ok(url: str) -> httpx.Response | None:
    response = httpx.get(url, timeout=5)
    return response if response.status_code == 200 else None


def emulator() -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{EMULATOR_PORT}", timeout=30)


def place_inbound_call() -> str:
    response = emulator().post("/emulator/calls", json={"from": CALLER, "to": INBOUND_NUMBER, "script": "three-turns"})
    response.raise_for_status()
    return response.json()["call_sid"]


def call_report(call_sid: str) -> dict[str, Any]:
    return emulator().get(f"/emulator/calls/{call_sid}").raise_for_status().json()


def wait_call_end(call_sid: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(f"call {call_sid} to end",
                    lambda: (r := call_report(call_sid))["status"] in ("completed", "failed", "busy", "no-answer",
                                                                       "canceled") and r, timeout)


def check_inbound_call(stack: Stack) -> None:
    call_sid = place_inbound_call()
    report = wait_call_end(call_sid)
    said = [s.get("text", "") for s in report.get("said", [])]
    if report["status"] != "completed" or not report.get("heard") or len(said) < 3:
        raise RuntimeError(f"inbound call {call_sid} did not go through: {report}")
    r = redis.Redis(port=REDIS_PORT, decode_responses=True)
    keys = RedisKeys(stack.env("gateway", "VOICEBOT_REDIS_PREFIX"))
    transcript = wait_for("the inbound transcript", lambda: CallRecordReader(r, keys).transcript(call_sid), 30)
    log(f"inbound call {call_sid}: completed, caller said {len(said)} lines, transcript stored "
        f"({len(transcript)} entries)")


def check_outbound_call(stack: Stack) -> None:
    api = httpx.Client(base_url=f"http://127.0.0.1:{stack.values['dialerApi']['port']}", timeout=30,
                       headers={"Authorization": f"Bearer {stack.values['secrets']['dialerApiKeys']}"})
    response = api.post("/v1/calls", json={"to": OUTBOUND_NUMBER, "agent_profile": "images-outbound",
                                           "variables": {"name": "Sam"}, "machine_detection": "none"},
                        headers={"Idempotency-Key": f"images-{time.time()}"})
    if response.status_code not in (200, 201, 202):
        raise RuntimeError(f"dial job refused: {response.status_code} {response.text}")
    job_id = response.json()["id"]
    job = wait_for(f"dial job {job_id}",
                   lambda: (j := api.get(f"/v1/calls/{job_id}").json())["state"] in ("completed", "failed", "canceled")
                   and j.get("transcript") and j, 150)
    bot = [t["text"] for t in job["transcript"] if t["role"] == "assistant"]
    if job["state"] != "completed" or not bot or not bot[0].startswith("Hi Sam"):
        raise RuntimeError(f"outbound dial job {job_id} did not go through: {job}")
    # placed in a pool process of the chart's prefork worker, counted on the main process's port
    metrics_url = f"http://127.0.0.1:{stack.values['dialerWorker']['metricsPort']}/metrics"
    wait_for("the placement on the dialer worker's /metrics",
             lambda: 'voicebot_dial_placements_total{result="placed"} 1.0' in httpx.get(metrics_url).text, 30)
    log(f"outbound dial job {job_id}: placed as {job['call_sid']}, completed, greeting {bot[0]!r}; "
        "the placement counted on the dialer worker's /metrics")


def check_drain(stack: Stack) -> None:
    container = stack.container("bot-worker")
    call_sid = place_inbound_call()
    wait_for(f"call {call_sid} in progress with the bot heard",
             lambda: (r := call_report(call_sid))["status"] == "in-progress" and r.get("heard"), 60)
    grace = stack.deployment("bot-worker")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    stopping = subprocess.Popen(["podman", "stop", "-t", str(grace), container],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    r = redis.Redis(port=REDIS_PORT, decode_responses=True)
    keys = RedisKeys(stack.env("bot-worker", "VOICEBOT_REDIS_PREFIX"))
    draining = wait_for("the worker to mark itself draining",
                        lambda: [w for w in r.zrange(keys.workers(), 0, -1)
                                 if r.hget(keys.worker(w), "draining") == "1"], 30)
    report = wait_call_end(call_sid, timeout=grace)
    stopping.wait(timeout=grace + 30)
    state = json.loads(run("podman", "inspect", container, "--format", "{{json .State}}"))
    said = [s.get("text", "") for s in report.get("said", [])]
    if report["status"] != "completed" or len(said) < 3:
        raise RuntimeError(f"the call was cut by the drain: {report}")
    if state.get("ExitCode") != 0 or state.get("Status") != "exited":
        raise RuntimeError(f"the bot-worker container did not exit cleanly after the drain: {state}")
    log(f"drain: SIGTERM during call {call_sid}; worker draining={draining}, the call completed "
        f"({len(said)} caller lines), then the container exited 0")


def ensure_redis_image(cache_dir: Path) -> None:
    if subprocess.run(["podman", "image", "exists", REDIS_IMAGE], check=False).returncode == 0:
        return
    rootfs = cache_dir / "images" / "redis-test-bookworm.tar"
    if not rootfs.exists():
        if shutil.which("mmdebstrap") is None:
            run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap")
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        sources = [s for s in ["/etc/apt/sources.list.d/debian.sources"] if Path(s).exists()]
        partial = rootfs.with_suffix(".partial.tar")
        log("building the Redis test image from Debian packages")
        run("mmdebstrap", "--quiet", "--variant=minbase", "--include=redis-server",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", "bookworm", str(partial), *sources, timeout=900)
        partial.rename(rootfs)
    run("podman", "import", str(rootfs), REDIS_IMAGE)


def main() -> int:
    cache_dir = Path(os.environ.get("CACHE_DIR", Path.home() / ".cache" / "voicebot"))
    helm = shutil.which("helm") or str(cache_dir / "tools" / "bin" / "helm")
    conf = ROOT / "build" / "containers.conf"
    if conf.exists():
        os.environ.setdefault("CONTAINERS_CONF", str(conf))
    tag = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    ensure_redis_image(cache_dir)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voicebot-images-") as work:
        stack = Stack(Path(work), helm, str(tag))
        stack.render()
        stack.stop()  # what an interrupted run left
        failed = False
        try:
            stack.start()
            for name, check in (("endpoints", check_endpoints), ("inbound call", check_inbound_call),
                                ("outbound call", check_outbound_call), ("drain", check_drain)):
                step = time.monotonic()
                check(stack)
                log(f"PASS {name} ({time.monotonic() - step:.0f} s)")
        except Exception as exc:
            failed = True
            log(f"FAIL: {exc}")
            print(stack.logs(), file=sys.stderr)
        finally:
            stack.stop()
    log(f"{'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
