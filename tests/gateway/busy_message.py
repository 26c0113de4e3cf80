"""What the gateway asks of Twilio's REST API when no worker takes a call: the busy message, then hang up."""

import asyncio

import pytest
from gateway.twilio_frames import CALL
from websockets.exceptions import ConnectionClosed


def busy_updates(twilio_rest: list[dict], call_sid: str = CALL) -> list[dict]:
    """The REST updates that gave the call the busy message."""
    return [u for u in twilio_rest if u["call_sid"] == call_sid and "all of our agents are busy" in u.get("Twiml", "")]


async def assert_busy_once(ws, twilio_rest: list[dict], call_sid: str = CALL) -> None:
    """Twilio's side is closed normally after exactly one busy TwiML for the call."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 15)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    updates = busy_updates(twilio_rest, call_sid)
    assert len(updates) == 1, twilio_rest
    assert "<Hangup" in updates[0]["Twiml"]
