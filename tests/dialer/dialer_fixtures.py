"""Dialer fixtures (re-exported by tests/dialer/conftest.py and tests/cli/conftest.py): settings on a
per-test Redis prefix, the API in-process, real Celery workers, the emulator, a TwiML stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dialer_helpers import API_KEY, PYTHON, PYTHONPATH, ROOT, CeleryWorkers, settings_env, wait_for
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from voicebot_devstack.processes import free_port
from voicebot_dialer.api import build_asgi_app
from voicebot_dialer.settings import DialerSettings


@pytest.fixture
def dialer_settings(redis_url: str, redis_prefix: str, tmp_path: Path) -> DialerSettings:
    return DialerSettings(
        storage_dir=str(tmp_path / "call-data"),
        redis_url=redis_url, redis_prefix=redis_prefix, dialer_api_keys=f"{API_KEY},second-key",
        dialer_broker_prefix=f"{redis_prefix}:celery:", dialer_metrics_port=0,
        dialer_host="127.0.0.1", dialer_metrics_host="127.0.0.1",
        agent_profiles_path=str(ROOT / "tests/dialer/agent-profiles.yaml"),
        dialer_from_numbers="+15550000001,+15550000002", log_json=False,
        dialer_require_capacity=False, dialer_account_cps=50, dialer_number_cps=50,
    )


@pytest.fixture
def api(dialer_settings: DialerSettings) -> Iterator[TestClient]:
    with TestClient(build_asgi_app(dialer_settings)) as client:
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        yield client


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def celery_workers(tmp_path: Path) -> Iterator[CeleryWorkers]:
    workers = CeleryWorkers(tmp_path)
    yield workers
    workers.stop_all()
    print(workers.logs())  # shown by pytest only when the test failed


# --- the Twilio emulator and a stand-in for the gateway's Twilio-facing routes -----------------

@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m voicebot_emulator serve` on a free port, shared by a module's tests (each test
    dials its own numbers); yields its base URL."""
    import httpx

    tmp_path = tmp_path_factory.mktemp("emulator")
    settings = DialerSettings()  # the default (emulator) Twilio account, like every test's settings
    port = free_port()
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": PYTHONPATH,
           "VOICEBOT_EMULATOR_RING_SECONDS": "0.2", "VOICEBOT_EMULATOR_NO_ANSWER_SECONDS": "0.3",
           "VOICEBOT_EMULATOR_RECORDINGS_DIR": str(tmp_path / "emulator")}
    log = open(tmp_path / "emulator.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([PYTHON, "-m", "voicebot_emulator", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None and pytest.fail((tmp_path / "emulator.log").read_text()[-2000:])

    wait_for(healthy, 20, "the emulator to answer /healthz", 0.1)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    print((tmp_path / "emulator.log").read_text()[-4000:])  # shown only when teardown fails


@pytest.fixture
def twilio_routes(dialer_settings: DialerSettings) -> Iterator[str]:
    """What the gateway does for outbound calls, minus the media stream: checks Twilio's signature,
    answers the outbound TwiML (greeting with the job's variables, or core's answering-machine policy), and
    hands status/AMD callbacks to the dialer with `enqueue_call_status`. Yields its base URL."""
    import threading

    import uvicorn

    from voicebot_core import answering_machine, twiml
    from voicebot_core.dial_jobs import DialJob
    from voicebot_core.profiles import load_profiles
    from voicebot_core.redis_keys import RedisKeys
    from voicebot_core.signatures import SignatureChecker
    from voicebot_core.tickets import verify_outbound_url_token
    from voicebot_dialer.enqueue import enqueue_call_status, producer_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    checker = SignatureChecker(dialer_settings.twilio_auth_token.get_secret_value())
    keys = RedisKeys(prefix=dialer_settings.redis_prefix)
    client = redis.Redis.from_url(dialer_settings.redis_url, decode_responses=True)
    profiles = load_profiles(dialer_settings.agent_profiles_path)
    app = FastAPI()

    async def signed_form(request: Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        checker.check(f"{base}{request.url.path}?{request.url.query}", form,
                      request.headers.get("X-Twilio-Signature"))
        return form

    @app.post("/twilio/outbound/{job_id}")
    async def outbound(job_id: str, request: Request, attempt: int, token: str) -> Response:
        form = await signed_form(request)
        verify_outbound_url_token(dialer_settings.stream_ticket_secret.get_secret_value(), token, job_id, attempt)
        job = DialJob.from_hash(client.hgetall(keys.dial_job(job_id)))
        if answering_machine.acts_on(job, form.get("AnsweredBy", "")):
            return Response(answering_machine.machine_twiml(job, profiles), media_type="application/xml")
        greeting = profiles.get(job.agent_profile, job.overrides).greeting_for("outbound", job.variables)
        return Response(twiml.say_and_hang_up(greeting), media_type="application/xml")

    @app.post("/twilio/{kind}")
    async def callback(kind: str, request: Request, dial_job_id: str, attempt: int) -> Response:
        form = await signed_form(request)
        # Exactly what the gateway does, with a producer that knows the test's broker key prefix.
        enqueue_call_status(producer_app(dialer_settings.broker_url, dialer_settings.dialer_broker_prefix),
                            dial_job_id, attempt, kind, form)
        return Response(status_code=204)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, "the TwiML stand-in to start")
    yield base
    server.should_exit = True
    thread.join(timeout=10)
    client.close()


@pytest.fixture
def live_settings(dialer_settings: DialerSettings, emulator: str, twilio_routes: str) -> DialerSettings:
    """Settings for Celery workers that dial through the emulator."""
    return dialer_settings.model_copy(update={
        "twilio_api_base_url": emulator, "gateway_public_base_url": twilio_routes,
        "dialer_dispatch_lease_s": 5.0, "dialer_placing_timeout_s": 3.0, "dialer_max_inflight": 6,
    })
