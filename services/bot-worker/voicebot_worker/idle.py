"""Idle prompts: when the caller stays silent after the bot spoke, ask whether they are still there, then give up.

The timer runs from the moment the caller heard the end of the bot's speech (its playback end, moved
to the last mark echo when that comes later) and fires early by the measured lead between asking for
speech and its first audio, so the prompt is heard `idle_timeout_s` after the bot went quiet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from voicebot_core import metrics
from voicebot_core.profiles import AgentProfile

log = logging.getLogger(__name__)

# Upper bound for a prompt's audio to start after we ask for it; the measured lead is clamped here.
MAX_PROMPT_LEAD_S = 0.5


class IdleTimer:
    """The idle timer of one call, and the speaking state it depends on."""

    def __init__(self, profile: AgentProfile, call_sid: str, *, speak: Callable[[str], Awaitable[None]],
                 give_up: Callable[[], None]) -> None:
        self._profile = profile
        self._call_sid = call_sid
        self._speak = speak
        self._give_up = give_up  # say the idle goodbye and hang up
        self.caller_speaking = False  # a user turn is open
        self._bot_speaking = False
        self._stopped = False  # the call is closing: no more prompts
        self._task: asyncio.Task[None] | None = None
        self._prompts = 0
        self._speech_requested_at: float | None = None
        self._prompt_lead_s = 0.1

    # ------------------------------------------------------------------ who is speaking
    # Anyone speaking stops the timer; it starts again from the end of the bot's speech.
    def caller_started(self) -> None:
        self.caller_speaking = True
        self._cancel()

    def bot_started(self) -> None:
        self._bot_speaking = True
        self._cancel()

    def caller_stopped(self, said_something: bool) -> None:
        self.caller_speaking = False
        if said_something:
            self._prompts = 0

    def bot_stopped(self, audio_end: float) -> None:
        self._bot_speaking = False
        if not self.caller_speaking:
            self._arm(audio_end)

    def speech_heard(self) -> None:
        """The last mark came back: the caller just heard the end of the bot's speech."""
        if self._task is not None and not self._bot_speaking:
            self._arm(time.monotonic())

    # ------------------------------------------------------------------ prompt lead
    def speech_requested(self) -> None:
        self._speech_requested_at = time.monotonic()

    def audio_sent(self, now: float) -> None:
        if self._speech_requested_at is not None:
            lead = now - self._speech_requested_at
            self._prompt_lead_s = min(MAX_PROMPT_LEAD_S, 0.5 * self._prompt_lead_s + 0.5 * lead)
            self._speech_requested_at = None

    # ------------------------------------------------------------------ the timer
    def stop(self) -> None:
        self._stopped = True
        self._cancel()

    def _arm(self, audio_end: float) -> None:
        if self._stopped or self._profile.idle_timeout_s <= 0:
            return
        self._cancel()
        fire_at = audio_end + self._profile.idle_timeout_s - self._prompt_lead_s
        self._task = asyncio.get_running_loop().create_task(self._fire_at(fire_at))

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _fire_at(self, fire_at: float) -> None:
        await asyncio.sleep(max(0.0, fire_at - time.monotonic()))
        self._task = None
        if self._stopped or self.caller_speaking or self._bot_speaking:
            return
        if self._prompts < self._profile.max_idle_prompts:
            self._prompts += 1
            metrics.IDLE_PROMPTS.inc()
            log.info("caller silent: idle prompt %d", self._prompts, extra={"call_sid": self._call_sid})
            await self._speak(self._profile.idle_prompt)
        else:
            self._give_up()
