"""What the words say about a pause: "I would like to ..." is not a finished turn, whatever the audio says.

Smart Turn v3 judges a pause from the audio alone. On our corpus of sentences with a 0.5-1.5 s pause in
the middle (bench/conversation.py) it ended 8 of 12 turns in the pause, so the bot answered half a
sentence. The transcript of the speech so far is there by then: when it ends on a word that cannot end
an English sentence (an article, a preposition, a conjunction, an auxiliary, a filler) or on a comma,
dash or ellipsis, `WordAwareTurnStopStrategy` holds the turn's end for up to `UNFINISHED_HOLD_S`. If the
caller goes on, VAD's new start discards the pending end as usual; if not, the turn ends after the hold.
A question mark always ends it: "Where are you from?" ends on a preposition and is complete.
"""

from __future__ import annotations

import asyncio
import re

from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

# Longer than the longest mid-sentence pause we plan for (1.5 s in the corpus) minus VAD's 0.2 s stop.
UNFINISHED_HOLD_S = 1.5
# Words after which an English sentence goes on. Left out on purpose: words that often end one too
# ("thank you", "I want it", "I think so", "very well").
UNFINISHED_LAST_WORDS = frozenset([
    "a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "to", "of", "in", "on", "at",
    "for", "with", "from", "about", "into", "onto", "by", "as", "than", "like", "and", "but", "or", "nor",
    "because", "if", "when", "while", "although", "though", "since", "unless", "until", "whether", "i",
    "we", "they", "he", "she", "um", "uh", "er", "erm", "hmm",
])
# An auxiliary ends a sentence after its subject ("yes I can", "I will") but not after a noun ("my
# order number is", "the thing is").
AUXILIARIES = frozenset([
    "is", "are", "was", "were", "am", "be", "been", "have", "has", "had", "do", "does", "did", "can",
    "could", "would", "should", "will", "shall", "may", "might", "must",
])
PRONOUNS = frozenset(["i", "we", "you", "they", "he", "she", "it", "that", "this", "there", "who"])
UNFINISHED_PHRASES = ("let me see", "let me think", "i mean", "i think", "i guess", "tell me", "can you",
                      "could you", "would you", "will you", "do you", "did you", "are you")
_TRAILING = re.compile(r"[\s\"')\]]+$")
_WORD = re.compile(r"[a-z']+")


def sounds_unfinished(text: str) -> bool:
    """Whether a transcript stops where a sentence cannot end."""
    text = _TRAILING.sub("", text.strip().lower())
    if not text or text.endswith("?"):
        return False
    if text.endswith((",", "-", "…", "...", ":")):
        return True
    words = _WORD.findall(text)
    if not words:
        return False
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    if last in AUXILIARIES:
        return bool(before) and before not in PRONOUNS and before not in ("yes", "no")
    tail = " ".join(words[-3:])
    return (last in UNFINISHED_LAST_WORDS or words == ["well"] or words == ["so"]
            or any(tail == phrase or tail.endswith(" " + phrase) for phrase in UNFINISHED_PHRASES))


class WordAwareTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """pipecat's turn-analyzer stop strategy, holding the end of a turn whose words sound unfinished."""

    def __init__(self, *, hold_s: float = UNFINISHED_HOLD_S, **kwargs) -> None:
        super().__init__(**kwargs)
        self._hold_s = hold_s
        self._hold_task: asyncio.Task | None = None
        self._held_out = False  # the hold ran out: end the turn on the words we have
        self.holds = 0  # turn ends held (for tests and logs)

    async def trigger_user_turn_stopped(self, **kwargs) -> None:
        if not self._held_out and sounds_unfinished(self._text):
            if self._hold_task is None:
                self.holds += 1
                self._hold_task = self.task_manager.create_task(self._hold(kwargs), f"{self}::unfinished_hold")
            return
        await self._cancel_hold()
        self._held_out = False
        await super().trigger_user_turn_stopped(**kwargs)

    async def _hold(self, kwargs: dict) -> None:
        try:
            await asyncio.sleep(self._hold_s)
        except asyncio.CancelledError:
            return
        self._hold_task = None
        self._held_out = True
        await self.trigger_user_turn_stopped(**kwargs)

    async def _cancel_hold(self) -> None:
        task, self._hold_task = self._hold_task, None
        if task is not None and task is not asyncio.current_task():
            await self.task_manager.cancel_task(task)

    async def _discard_pending_end_of_turn(self) -> None:
        # The caller spoke again (or the turn ended another way): a held end is stale.
        await self._cancel_hold()
        self._held_out = False
        await super()._discard_pending_end_of_turn()

    async def cleanup(self) -> None:
        await self._cancel_hold()
        await super().cleanup()
