"""The chart requires every secret the services use (or an existingSecret) and generates none; the
secrets it passes are the ones the services check at start (issue 13: no default secrets)."""

from __future__ import annotations

import re

import pytest

from voicebot_dialer.api_keys import ApiKeys
from voicebot_dialer.settings import DialerSettings
from voicebot_gateway.settings import GatewaySettings
from voicebot_worker.settings import WorkerSettings

from .conftest import CHART, env_of, find

MINIMAL = str(CHART / "ci" / "minimal-values.yaml")
CREATE = ["--set", "secrets.create=true", "--set", "secrets.twilioAuthToken=t0k3n-0f-0ur-0wn",
          "--set", "secrets.streamTicketSecret=t1ck3t-s3cr3t-0f-0ur-0wn",
          "--set", "redis.url=redis://redis.internal:6379/0"]
DIALER = ["--set", "secrets.dialerApiKeys=d1al3r-k3y", "--set", "secrets.dialerWebhookSecret=w3bh00k-s3cr3t"]
SECRET_KEYS = {"VOICEBOT_TWILIO_AUTH_TOKEN": "twilio-auth-token",
               "VOICEBOT_STREAM_TICKET_SECRET": "stream-ticket-secret",
               "VOICEBOT_DIALER_WEBHOOK_SECRET": "dialer-webhook-secret"}
WORKLOADS = {"voicebot-gateway": GatewaySettings, "voicebot-bot-worker": WorkerSettings,
             "voicebot-dialer-api": DialerSettings, "voicebot-dialer-worker": DialerSettings}


def test_chart_made_secret_without_the_webhook_secret_fails_to_render(helm):
    result = helm(*CREATE, "--set", "secrets.dialerApiKeys=d1al3r-k3y")
    assert result.returncode != 0
    assert "secrets.dialerWebhookSecret is required when secrets.create=true" in result.stderr


@pytest.mark.parametrize(("missing", "message"), [
    ("secrets.twilioAuthToken", "secrets.twilioAuthToken is required"),
    ("secrets.streamTicketSecret", "secrets.streamTicketSecret is required"),
    ("secrets.dialerApiKeys", "secrets.dialerApiKeys is required"),
    ("secrets.dialerWebhookSecret", "secrets.dialerWebhookSecret is required"),
])
def test_chart_made_secret_requires_every_secret(helm, missing, message):
    result = helm(*CREATE, *DIALER, "--set", f"{missing}=")
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize(("setting", "value"), [
    ("secrets.twilioAuthToken", "emulator-auth-token"),
    ("secrets.streamTicketSecret", "change-me-stream-ticket-secret"),
    ("secrets.dialerWebhookSecret", "change-me-webhook-secret"),
    ("secrets.dialerApiKeys", "change-me-key"),
])
def test_chart_made_secret_refuses_the_public_development_defaults(helm, setting, value):
    result = helm(*CREATE, *DIALER, "--set", f"{setting}={value}")
    assert result.returncode != 0
    assert f"{setting} is a public development default" in result.stderr, result.stderr


def test_without_the_dialer_its_secrets_are_not_required(render):
    docs = render(*CREATE, "--set", "dialerApi.enabled=false")
    secret = find(docs, "Secret", "voicebot-secrets")
    assert set(secret["stringData"]) == {"twilio-auth-token", "stream-ticket-secret"}


def test_every_service_secret_is_a_required_reference(render):
    """With an existingSecret (the default path) every secret a service checks comes from the Secret, none
    optional: a missing key stops the pod instead of leaving a service on a built-in default."""
    docs = render()
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart creates no Secret unless asked"
    for name, settings in WORKLOADS.items():
        pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        for field in settings.secrets_in_use:
            ref = env[f"VOICEBOT_{field.upper()}"]["valueFrom"]["secretKeyRef"]
            assert ref["key"] == SECRET_KEYS[f"VOICEBOT_{field.upper()}"], (name, field)
            assert not ref.get("optional"), (name, field)
    # The dialer API's keys: a file from the Secret's volume (tests/deploy/test_chart_storage.py), no env.
    pod = find(docs, "Deployment", "voicebot-dialer-api")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "dialer-api-keys"]
    assert volume["secret"]["items"] == [{"key": "dialer-api-keys", "path": "keys"}]
    assert not volume["secret"].get("optional")


def test_no_template_generates_a_secret():
    generators = re.compile(r"\b(randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|genPrivateKey|"
                            r"genCA|derivePassword|uuidv4|lookup)\b")
    offenders = [p.name for p in (CHART / "templates").rglob("*") if p.is_file() and generators.search(p.read_text())]
    assert offenders == []


def test_the_chart_made_secret_passes_every_service_start_check(render, tmp_path):
    """The services, outside development mode, accept what the chart-made Secret gives them, the dialer
    API its keys file (the Secret's dialer-api-keys as the kubelet writes it) included."""
    docs = render("-f", MINIMAL)
    secret = find(docs, "Secret", "voicebot-secrets")["stringData"]
    for name, settings in WORKLOADS.items():
        env = env_of(find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0])
        values = {variable.removeprefix("VOICEBOT_").lower(): secret[key]
                  for variable, key in SECRET_KEYS.items() if variable in env}
        loaded = settings(dev_mode=False, **values)
        assert loaded.public_default_secrets() == [], name
    keys_file = tmp_path / "keys"
    keys_file.write_text(secret["dialer-api-keys"])
    keys = ApiKeys({}, str(keys_file), allow_public=False)
    assert keys.caller(secret["dialer-api-keys"]) is not None
