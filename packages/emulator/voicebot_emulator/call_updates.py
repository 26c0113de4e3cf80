"""REST updates reaching a running call: the pending action, and the waits it interrupts.

A REST update (hang up, cancel, redirect) or the time limit does not cancel the call's task: it
leaves a pending action and wakes whatever the call is waiting on, so every ending goes through
the same path (stop the stream, set the final status, status callback, recordings).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from voicebot_emulator.model import Call
from voicebot_emulator.phone import MediaSession


@dataclass
class PendingAction:
    kind: str  # hangup | cancel | redirect
    twiml: str | None = None
    url: str | None = None
    method: str = "POST"


class CallEnded(Exception):
    """Raised inside a call's flow to jump to its ending with this final status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class CallUpdates:
    """The one place an update lands: the pending action, the wake-up, and the open media stream."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.pending: PendingAction | None = None
        self.session: MediaSession | None = None  # the stream a `<Connect>` holds open, if any
        self._wake = asyncio.Event()

    def request(self, action: PendingAction) -> None:
        self.pending = action
        self._wake.set()
        if self.session is not None:
            self.session.request_end(action.kind)

    async def sleep(self, seconds: float) -> None:
        """Sleep unless a REST update arrives first; then act on it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
        self.check_pending()

    def check_pending(self) -> None:
        """End the call here if a hang-up or cancel is pending (a redirect is the TwiML follower's)."""
        if self.pending is None:
            return
        if self.pending.kind == "cancel" or (self.pending.kind == "hangup" and self.call.status != "in-progress"):
            raise CallEnded("canceled")
        if self.pending.kind == "hangup":
            raise CallEnded("completed")

    def take_redirect(self) -> PendingAction | None:
        """The pending redirect, now consumed (later updates wake the call again); None if there is none."""
        action = self.pending
        if action is None or action.kind != "redirect":
            return None
        self.pending = None
        self._wake.clear()
        return action
