"""Emulator settings: `VOICEBOT_EMULATOR_<FIELD>` for its own, the shared `VOICEBOT_*` for the rest.

The emulator plays Twilio for the same account every other service uses, so the Twilio account
and logging come from `CommonSettings` (VOICEBOT_TWILIO_*, VOICEBOT_LOG_*) unchanged.
"""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

from pydantic import Field

from voicebot_core.settings import CommonSettings


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or `localhost`; False for every other address,
    a host name, or an empty host (every interface)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmulatorSettings(CommonSettings):
    emulator_host: str = Field(
        "127.0.0.1",
        description="Listen address. Keep it loopback: the control API (/emulator/...) has no authentication "
        "(development only); another address logs a warning at start.")
    emulator_port: int = Field(8060, description="Listen port.")
    emulator_public_base_url: str = Field(
        "", description="Base URL clients use for us (absolute heard_wav_url in reports).")
    emulator_voice_url: str = Field("http://127.0.0.1:8080/twilio/voice",
                                    description="Voice webhook for inbound calls.")
    emulator_status_callback_url: str = Field("", description="Status callback for inbound calls (empty: none).")
    emulator_incoming_numbers: str = Field(
        "+15550100000,+15550100001,+15550100002",
        description="Comma-separated numbers the account owns (IncomingPhoneNumbers); an inbound call to one "
        "with a VoiceUrl fetches its TwiML there, any other inbound call from emulator_voice_url.")
    emulator_ring_seconds: float = Field(1.0, description="How long an outbound call rings before it is answered.")
    emulator_no_answer_seconds: float = Field(3.0, description="Ring time before a no-answer number gives up.")
    emulator_recordings_dir: Path = Field(Path(tempfile.gettempdir()) / "voicebot-emulator",
                                          description="Where heard.wav files and call recordings are written.")
    emulator_script_linger_seconds: float = Field(
        15.0, description="After a caller script ends without hanging up, wait this long for the server."
    )
    emulator_softphone_agent_profiles: str = Field(
        "", description="Comma-separated agent profile names the softphone page offers (empty: only the "
        "number's own profile); the stack fills it from its agent profiles file.")

    @property
    def softphone_agent_profiles(self) -> list[str]:
        return [name.strip() for name in self.emulator_softphone_agent_profiles.split(",") if name.strip()]
