"""The console's pages: served by the dialer API without a key (they hold no data), kept to this origin
by their Content-Security-Policy, and absent when the deployment turns the console off."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from voicebot_dialer.api import create_app
from voicebot_dialer.console_pages import CONSOLE_DIR


def _client(dialer_settings, **overrides) -> TestClient:
    return TestClient(create_app(dialer_settings.model_copy(update=overrides)))


def test_the_console_pages_are_served_with_a_same_origin_content_security_policy(dialer_settings):
    client = _client(dialer_settings)
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and 'src="console.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    script = client.get("/console/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"


def test_the_console_loads_nothing_from_another_origin():
    for path in CONSOLE_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), path
        assert not re.search(r"""(?:import|fetch)\s*\(?\s*["'`](?:https?:)?//""", text), path


def test_the_console_pages_need_no_key_but_its_data_does(dialer_settings):
    client = _client(dialer_settings)
    assert client.get("/console/index.html").status_code == 200
    assert client.get("/v1/call-records").status_code == 401


def test_a_deployment_can_turn_the_console_off(dialer_settings):
    client = _client(dialer_settings, dialer_console_enabled=False)
    assert client.get("/console/").status_code == 404
    assert client.get("/openapi.json").status_code == 200
