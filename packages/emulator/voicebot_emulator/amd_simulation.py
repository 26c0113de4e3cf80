"""Answering-machine detection on an outbound call, as Twilio reports it, and the mailbox that answers.

The callee is known up front (the number's configured `answer`), so detection only has to take
the right time: a human is called after AMD_HUMAN_S; a mailbox at the start of its greeting
(`Enable`) or after the greeting and its beep (`DetectMessageEnd`). Synchronous AMD holds the
TwiML fetch until then and adds `AnsweredBy`; asynchronous AMD posts the result to its callback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from voicebot_emulator.call_webhooks import CallWebhooks
from voicebot_simulation import formant_voice
from voicebot_simulation.caller_script import Script, Step
from voicebot_simulation.caller_script import load as load_script

BEEP_S = 0.5
AMD_HUMAN_S = 0.3  # time to decide "human" (Twilio needs a few seconds; tests need speed)
AMD_MACHINE_START_S = 1.0


@dataclass(frozen=True)
class AmdSimulation:
    mode: str | None  # the call's MachineDetection: Enable | DetectMessageEnd (None: AMD is off)
    voicemail: bool  # a mailbox answers, not a person
    greeting_s: float  # how long the mailbox greeting lasts

    @property
    def delay_s(self) -> float:
        if not self.voicemail:
            return AMD_HUMAN_S
        if self.mode == "DetectMessageEnd":
            return self.greeting_s + BEEP_S
        return AMD_MACHINE_START_S

    @property
    def answered_by(self) -> str:
        if not self.voicemail:
            return "human"
        return "machine_end_beep" if self.mode == "DetectMessageEnd" else "machine_start"

    def mailbox_script(self, synchronous: bool) -> Script:
        """The mailbox's side of the line (synthesizes audio: run it off the event loop)."""
        # the greeting plays on the line unless sync AMD waited through it already
        if self.mode and synchronous and self.delay_s >= self.greeting_s:
            return load_script("listen")
        return voicemail_script(self.greeting_s)


def voicemail_script(greeting_s: float) -> Script:
    """A mailbox: greeting of `greeting_s`, a 1 kHz beep, then it records until hung up."""
    greeting = formant_voice.synthesize("hi, you have reached my voicemail, please leave a message after "
                                        "the tone and I will call you back as soon as I can")
    samples = round(greeting_s * 8000)
    greeting = np.concatenate([greeting, np.zeros(max(0, samples - len(greeting)), np.int16)])[:samples]
    t = np.arange(round(BEEP_S * 8000)) / 8000
    beep = (np.sin(2 * np.pi * 1000 * t) * 12000).astype(np.int16)
    return Script(name="voicemail", voice="formant", steps=(
        Step("_pcm", {"pcm": greeting, "label": "voicemail-greeting"}),
        Step("_pcm", {"pcm": beep, "label": "beep"}),
        Step("expect_hangup", {"timeout_s": 60}),
        Step("hangup", {}),
    ))


def conclude(amd: AmdSimulation, webhooks: CallWebhooks, mode: str) -> str:
    """Record the detector's verdict on the call; returns it (sync AMD sends it as `AnsweredBy`)."""
    call = webhooks.call
    call.answered_by = amd.answered_by
    call.log("amd", answered_by=call.answered_by, mode=mode)
    return call.answered_by


async def report_async(amd: AmdSimulation, webhooks: CallWebhooks) -> None:
    """Asynchronous AMD: the verdict after its delay, posted to the AMD status callback."""
    await asyncio.sleep(amd.delay_s)
    call, options = webhooks.call, webhooks.call.options
    conclude(amd, webhooks, "async")
    if options.async_amd_callback:
        params = {"CallSid": call.sid, "AccountSid": call.account_sid, "AnsweredBy": amd.answered_by,
                  "MachineDetectionDuration": str(round(amd.delay_s * 1000))}
        await webhooks.post(options.async_amd_callback, params, options.async_amd_callback_method, "amd-callback")
