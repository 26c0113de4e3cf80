"""The LLM context holds what the caller heard of an interrupted reply, not what the bot meant to say.

pipecat's assistant aggregator adds an interrupted reply with the text of the sentences that went
through the output, which can run past what played before the `clear` (the audio the phone held,
or a sentence written ahead of its audio). The mark tracker (marks.py) knows what played, from the echoed marks.
Once an interrupted utterance is resolved (every mark accounted for), its assistant message is
rewritten to the heard part, so the next LLM turn does not assume the caller heard the rest.

The message and the resolution come in either order (marks may come back after the next user turn
started), so each side waits for the other. The message is found among the turns that stopped after
the utterance began, by its text, not by position.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipecat.processors.aggregators.llm_context import LLMContext

from voicebot_worker.marks import BotUtterance

MAX_WAITING = 8  # interrupted utterances whose message never showed up (nothing was sent) are forgotten
MAX_TURNS = 16  # recent assistant turns an utterance may belong to


def _words(text: str) -> str:
    return " ".join(text.split())


class HeardContext:
    def __init__(self, context: LLMContext, clock: Callable[[], float] = time.monotonic) -> None:
        self._context = context
        self._clock = clock  # the mark tracker's: BotUtterance.started is on it
        self._turns: list[tuple[dict[str, Any], float]] = []  # assistant messages and when their turn stopped
        self._waiting: list[BotUtterance] = []
        self._rewritten: list[dict[str, Any]] = []  # messages already set to what was heard (identity)

    def assistant_turn_stopped(self, content: str) -> bool:
        """pipecat's assistant aggregator added `content` as an assistant message (if not empty)."""
        message = next((m for m in reversed(self._context.get_messages())
                        if isinstance(m, dict) and m.get("role") == "assistant"), None)
        if message is None or not content.strip() or _words(str(message.get("content"))) != _words(content):
            return False
        self._turns = [*self._turns, (message, self._clock())][-MAX_TURNS:]
        return self.apply()

    def utterance_resolved(self, utterance: BotUtterance) -> bool:
        """An utterance's marks are all back. Returns whether the context changed."""
        if not utterance.interrupted:
            return False
        self._waiting = [*self._waiting, utterance][-MAX_WAITING:]
        return self.apply()

    def apply(self) -> bool:
        """Rewrite the messages of the waiting utterances whose turn has stopped."""
        changed = False
        for utterance in list(self._waiting):
            message = self._find(utterance)
            if message is None:
                continue
            self._waiting.remove(utterance)
            self._rewritten.append(message)
            heard = utterance.heard
            if heard:
                message["content"] = heard
            else:
                # The caller heard none of it: drop the message rather than keep a placeholder such as
                # "(interrupted)", which models tend to repeat or answer; two user messages in a row are
                # what the caller experienced, and every LLM adapter accepts them.
                self._context.set_messages([m for m in self._context.get_messages() if m is not message])
            changed = True
        return changed

    def _find(self, utterance: BotUtterance) -> dict[str, Any] | None:
        """The message of a turn that stopped after the utterance began, whose text begins what the
        utterance says (so an earlier reply with the same words, heard whole, is never touched)."""
        said = _words(utterance.text)
        for message, stopped_at in reversed(self._turns):
            if stopped_at < utterance.started or any(message is done for done in self._rewritten):
                continue
            sent = _words(str(message.get("content") or ""))
            if sent and said.startswith(sent) and not message.get("tool_calls"):
                return message
        return None
