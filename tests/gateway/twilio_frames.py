"""Twilio's side of a media stream, for the gateway's tests."""

import base64
import json

from websockets.asyncio.client import connect

CALL = "CA" + "a" * 32
STREAM = "MZ" + "b" * 32


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(call_sid: str = CALL, parameters: dict[str, str] | None = None) -> str:
    """`start`; `parameters`: its customParameters (the TwiML's), an inbound call's by default."""
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": STREAM, "start": {
        "accountSid": "AC" + "0" * 32, "streamSid": STREAM, "callSid": call_sid, "tracks": ["inbound"],
        "customParameters": parameters or {"direction": "inbound"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


def media(seq: int) -> str:
    payload = base64.b64encode(bytes([0xFF]) * 160).decode()
    return json.dumps({"event": "media", "sequenceNumber": str(seq + 2), "streamSid": STREAM,
                       "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(seq * 20),
                                 "payload": payload}})


async def open_stream(gateway, signer, call_sid=CALL, signature=None):
    url = gateway.replace("http://", "ws://") + f"/twilio/stream/{call_sid}"
    sig = signature if signature is not None else signer.sign(url, {})
    return await connect(url, additional_headers={"X-Twilio-Signature": sig})


async def start_call(gateway, signer, call_sid: str = CALL):
    """A stream that has sent `connected` and `start`."""
    ws = await open_stream(gateway, signer, call_sid=call_sid)
    await ws.send(connected())
    await ws.send(start(call_sid))
    return ws
