"""Asynchronous AMD callbacks: core's answering-machine policy, applied through the real twilio SDK
(pointed at a stand-in for Twilio's Calls resource that records every call update)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient

from voicebot_dialer.service import DialerService
from voicebot_dialer.settings import DialerSettings


class _CallsResource(BaseHTTPRequestHandler):
    """POST /2010-04-01/Accounts/{sid}/Calls/{call_sid}.json: what `calls(sid).update(...)` sends."""

    updates: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_POST(self) -> None:
        form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        call_sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        _CallsResource.updates.append((call_sid, form))
        body = b'{"sid": "%s", "status": "in-progress"}' % call_sid.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def dialer(dialer_settings: DialerSettings) -> Iterator[DialerService]:
    server = HTTPServer(("127.0.0.1", 0), _CallsResource)
    _CallsResource.updates.clear()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield DialerService(dialer_settings.model_copy(
            update={"twilio_api_base_url": f"http://127.0.0.1:{server.server_port}"}))
    finally:
        server.shutdown()


def amd(dialer: DialerService, job_id: str, call_sid: str, answered_by: str) -> str:
    return dialer.handle_callback(job_id, 1, "amd", {"CallSid": call_sid, "AnsweredBy": answered_by})


def test_voicemail_is_left_with_the_jobs_variables(api: TestClient, dialer: DialerService) -> None:
    job_id = api.post("/v1/calls", json={"to": "+14155550401", "agent_profile": "renewals",
                                         "machine_detection": "voicemail",
                                         "variables": {"name": "Sam", "order_id": "A-9"}}).json()["id"]
    assert amd(dialer, job_id, "CA401", "machine_end_beep") == "voicemail"
    [(call_sid, update)] = _CallsResource.updates
    assert call_sid == "CA401"
    assert "<Say>Hi Sam, this is Ava from Example Co about order A-9. Please call us back.</Say><Hangup/>" \
        in update["Twiml"]
    job = dialer.store.get(job_id)
    assert (job["call_sid"], job["answered_by"]) == ("CA401", "machine_end_beep")
    assert "machine_voicemail_left" in [e["kind"] for e in dialer.store.events(job_id)]


def test_hangup_policy_and_people_are_not_machines(api: TestClient, dialer: DialerService) -> None:
    hang_up = api.post("/v1/calls", json={"to": "+14155550402", "agent_profile": "renewals",
                                          "machine_detection": "hangup"}).json()["id"]
    person = api.post("/v1/calls", json={"to": "+14155550403", "agent_profile": "renewals",
                                         "machine_detection": "voicemail"}).json()["id"]
    assert amd(dialer, hang_up, "CA402", "machine_start") == "hangup"
    assert amd(dialer, person, "CA403", "human") == "applied"
    assert _CallsResource.updates == [("CA402", {"Status": "completed"})]
    assert "machine_hung_up" in [e["kind"] for e in dialer.store.events(hang_up)]
