"""X-Forwarded-Proto/Host count only from a trusted proxy (issue 13: a forged forwarded host is refused).

Without a public base URL the gateway rebuilds the URL Twilio signed from the request. Any client
can send X-Forwarded-* headers, so they are believed only when the connection's peer is one of
VOICEBOT_GATEWAY_TRUSTED_PROXIES (the tests connect from 127.0.0.1), by the gateway and by uvicorn
alike, on the webhooks and on both media paths. A public base URL, when set, is always the URL.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from gateway.twilio_frames import CALL
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from helpers.entry_points import minimal_env, run_entry_point
from helpers.servers import Service, free_port, python_module
from voicebot_core.signatures import SIGNATURE_HEADER, SignatureChecker
from voicebot_gateway.settings import GatewaySettings

AUTH_TOKEN = "gateway-test-token"  # the test gateway's (conftest)

FORM = {"CallSid": "CA" + "2" * 32, "AccountSid": "AC" + "0" * 32, "From": "+15550001111",
        "To": "+15550003333", "CallStatus": "ringing", "Direction": "inbound"}
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "calls.example.com"}
FORWARDED_VOICE = "https://calls.example.com/twilio/voice"
FORWARDED_STREAM = f"wss://calls.example.com/twilio/stream/{CALL}"


def _post(base: str, signed_url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    signature = SignatureChecker(AUTH_TOKEN).sign(signed_url, FORM)
    return httpx.post(f"{base}/twilio/voice", data=FORM, headers={SIGNATURE_HEADER: signature, **(headers or {})})


def _stream_url(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.text).find("./Connect/Stream").get("url")


async def _upgrade(gateway: str, signer, signed_url: str):
    url = gateway.replace("http://", "ws://") + f"/twilio/stream/{CALL}"
    return await connect(url, additional_headers={SIGNATURE_HEADER: signer.sign(signed_url, {}), **FORWARDED})


# webhooks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trusted_proxies", ["", "10.0.0.0/8, 192.168.1.7"])
def test_webhook_signed_for_a_forged_forwarded_host_is_refused(gateway):
    """127.0.0.1 is not a trusted proxy (none configured, or others): its X-Forwarded-* are ignored."""
    forged = _post(gateway, FORWARDED_VOICE, FORWARDED)
    assert forged.status_code == 403, forged.text
    assert f"does not match {gateway}/twilio/voice" in forged.json()["detail"]  # the URL it reached
    # X-Forwarded-Proto alone: uvicorn does not take the scheme from it either
    assert _post(gateway, gateway.replace("http://", "https://") + "/twilio/voice",
                 {"X-Forwarded-Proto": "https"}).status_code == 403
    # signed for the URL it reached, the same headers change nothing: the stream stays on that host
    stream = _stream_url(_post(gateway, f"{gateway}/twilio/voice", FORWARDED))
    assert stream == gateway.replace("http://", "ws://") + f"/twilio/stream/{FORM['CallSid']}"


@pytest.mark.parametrize("trusted_proxies", ["127.0.0.1", "10.0.0.0/8, 127.0.0.0/8"])
def test_webhook_from_a_trusted_proxy_is_checked_against_the_forwarded_url(gateway):
    stream = _stream_url(_post(gateway, FORWARDED_VOICE, FORWARDED))
    assert stream == f"wss://calls.example.com/twilio/stream/{FORM['CallSid']}"
    # signed for the internal URL while the trusted ingress says otherwise: refused
    assert _post(gateway, f"{gateway}/twilio/voice", FORWARDED).status_code == 403


@pytest.mark.parametrize("trusted_proxies", ["127.0.0.1"])
@pytest.mark.parametrize("public_base_url", ["https://voice.example.org/base"])
def test_a_public_base_url_is_the_url_even_behind_a_trusted_proxy(gateway):
    assert _post(gateway, FORWARDED_VOICE, FORWARDED).status_code == 403
    assert _post(gateway, f"{gateway}/twilio/voice", FORWARDED).status_code == 403
    stream = _stream_url(_post(gateway, "https://voice.example.org/base/twilio/voice", FORWARDED))
    assert stream == f"wss://voice.example.org/base/twilio/stream/{FORM['CallSid']}"


def test_trusted_proxies_must_be_addresses_or_networks():
    with pytest.raises(ValueError, match=r"not an IP address or CIDR network: 'ingress\.local'"):
        GatewaySettings(dev_mode=True, gateway_trusted_proxies="10.0.0.1, ingress.local")
    assert GatewaySettings(dev_mode=True, gateway_trusted_proxies=" 10.0.0.0/8,,::1 ").trusted_proxies == [
        "10.0.0.0/8", "::1"]


# the media stream's upgrade, on both media paths ----------------------------------------------------
@pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)
@pytest.mark.parametrize("trusted_proxies", ["", "10.0.0.0/8"])
async def test_stream_upgrade_signed_for_a_forged_forwarded_host_is_refused(gateway, signer):
    with pytest.raises(InvalidStatus) as info:
        await _upgrade(gateway, signer, FORWARDED_STREAM)
    assert info.value.response.status_code == 403
    # signed for the URL it reached: the forwarded headers are ignored and the stream opens
    ws = await _upgrade(gateway, signer, gateway.replace("http://", "ws://") + f"/twilio/stream/{CALL}")
    await ws.close()


@pytest.mark.parametrize("gateway", ["relay", "asgi"], indirect=True)
@pytest.mark.parametrize("trusted_proxies", ["127.0.0.1"])
async def test_stream_upgrade_from_a_trusted_proxy_is_checked_against_the_forwarded_url(gateway, signer):
    ws = await _upgrade(gateway, signer, FORWARDED_STREAM)
    await ws.close()
    with pytest.raises(InvalidStatus) as info:
        await _upgrade(gateway, signer, gateway.replace("http://", "ws://") + f"/twilio/stream/{CALL}")
    assert info.value.response.status_code == 403


# the entry point: `python -m voicebot_gateway` wires the setting into uvicorn and the app ------------
@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_the_served_gateway_believes_forwarded_headers_only_from_its_trusted_proxies(
        tmp_path, redis_url, redis_prefix, trusted):
    port = free_port()
    env = minimal_env(tmp_path, VOICEBOT_DEV_MODE="true", VOICEBOT_REDIS_URL=redis_url,
                      VOICEBOT_REDIS_PREFIX=redis_prefix, VOICEBOT_GATEWAY_HOST="127.0.0.1",
                      VOICEBOT_GATEWAY_PORT=str(port), VOICEBOT_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                      VOICEBOT_GATEWAY_TRUSTED_PROXIES=trusted, VOICEBOT_LOG_JSON="false")
    base = f"http://127.0.0.1:{port}"
    service = Service(python_module("voicebot_gateway"), env, f"{base}/healthz", tmp_path / "gateway.log").wait_ready()
    try:
        forwarded = _post(base, FORWARDED_VOICE, FORWARDED)
        direct = _post(base, f"{base}/twilio/voice", FORWARDED)
    finally:
        service.stop()
    if trusted:
        assert (forwarded.status_code, direct.status_code) == (200, 403), forwarded.text
    else:
        assert (forwarded.status_code, direct.status_code) == (403, 200), direct.text


def test_the_gateway_refuses_to_start_with_a_malformed_trusted_proxy(tmp_path):
    result = run_entry_point("voicebot_gateway", minimal_env(tmp_path, VOICEBOT_DEV_MODE="true",
                                                             VOICEBOT_GATEWAY_TRUSTED_PROXIES="10.0.0.1/8"))
    assert result.returncode != 0
    assert "gateway_trusted_proxies" in result.stderr.lower() and "10.0.0.1/8" in result.stderr, result.stderr
