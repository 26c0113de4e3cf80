"""The words the platform shares with Twilio and between its services, spelled once.

Call statuses and answering-machine answers are Twilio's; close codes are what the gateway and
the bot-worker tell each other when a stream ends; outcomes are how we record a call's end.
"""

from __future__ import annotations

from typing import Final, Literal

# Twilio call statuses (Calls resource and status callbacks). The last five never change again.
CallStatus = Literal["queued", "initiated", "ringing", "in-progress", "answered", "completed", "busy",
                     "failed", "no-answer", "canceled"]
TERMINAL_CALL_STATUSES: Final = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Status callback events the dialer subscribes to (StatusCallbackEvent).
STATUS_CALLBACK_EVENTS: Final = ("initiated", "ringing", "answered", "completed")

# Twilio answering-machine detection (AnsweredBy): every answer that is not a person.
MACHINE_ANSWERS: Final = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)

# What a dial job asks for when a machine answers (the dial job's `machine_detection`).
MachineDetection = Literal["none", "hangup", "voicemail"]

# How a call ended, as stored on the call record and counted in metrics.
CallOutcome = Literal["completed", "busy", "no-answer", "failed", "machine", "transferred", "canceled",
                      "rejected"]
KNOWN_CALL_OUTCOMES: Final = ("completed", "busy", "no-answer", "failed", "machine", "transferred", "canceled",
                        "rejected")

# Dial attempts that ended with no conversation and are tried again (while attempts remain): every
# final call status but 'completed', or no call at all. Also the `reason` of voicebot_dial_retries_total.
DIAL_RETRY_REASONS: Final = (TERMINAL_CALL_STATUSES - {"completed"}) | {"placement-lost", "placement-error"}

# WebSocket close codes on the gateway <-> bot-worker and Twilio <-> gateway streams (RFC 6455).
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1007  # a malformed frame: this stream only
CLOSE_POLICY: Final = 1008  # a frame the stream may not carry; before accept (bad signature or ticket): HTTP 403
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_TRY_AGAIN: Final = 1013  # worker full or draining: the gateway tries another


def is_terminal_status(status: str) -> bool:
    return status in TERMINAL_CALL_STATUSES


def is_machine(answered_by: str) -> bool:
    return answered_by in MACHINE_ANSWERS
