"""TTS text aggregation that speaks a reply's first clause as soon as it is written.

pipecat's TTS services wait for a whole sentence before they synthesize it. With the local LLM (a few
tokens per 100 ms on 2 cores) the first sentence of "Sure, we can send a plumber to your kitchen."
arrives ~0.5 s after "Sure,": the caller waits for it in silence. This aggregator lets the first
clause of each reply go out at its comma (or semicolon, colon, dash); the rest is cut into sentences
as before, so only one extra chunk per reply and no change in the middle of a reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

CLAUSE_MARKS = (",", ";", ":", " -", "—")


class FirstClauseTextAggregator(SimpleTextAggregator):
    """SimpleTextAggregator whose first aggregation of a reply may end at a clause mark."""

    def __init__(self, *, min_words: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self._min_words = min_words
        self._first_out = False  # this reply already spoke a chunk

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        for char in text:
            # The clause ends at the space after its mark: "1,000" and "e.g.," stay whole.
            if not self._first_out and char.isspace() and self._ends_first_clause():
                clause = self._text.strip()
                await super().reset()  # empty, and no sentence ending pending
                self._first_out = True
                yield Aggregation(text=clause, type=TextType.SENTENCE)
                continue
            self._text += char
            result = await self._check_sentence_with_lookahead(char)
            if result:
                self._first_out = True
                yield result

    def _ends_first_clause(self) -> bool:
        text = self._text.rstrip()
        return text.endswith(CLAUSE_MARKS) and len(text.split()) >= self._min_words

    async def flush(self) -> Aggregation | None:
        self._first_out = False  # the reply is over: the next one starts with a clause again
        return await super().flush()

    async def handle_interruption(self) -> None:
        self._first_out = False
        await super().handle_interruption()

    async def reset(self) -> None:
        self._first_out = False
        await super().reset()
