"""The TTS text aggregation of the local voice: a reply's first clause goes out at its comma, the rest
in sentences, as the LLM streams it token by token."""

from __future__ import annotations

import pytest

from voicebot_worker.providers.first_clause import FirstClauseTextAggregator


async def chunks(aggregator: FirstClauseTextAggregator, reply: str, token_chars: int = 3) -> list[str]:
    """What the TTS is asked to speak, the reply arriving `token_chars` characters at a time."""
    out = []
    for start in range(0, len(reply), token_chars):
        async for aggregation in aggregator.aggregate(reply[start:start + token_chars]):
            out.append(aggregation.text)
    rest = await aggregator.flush()
    if rest:
        out.append(rest.text)
    return out


async def test_the_first_clause_is_spoken_before_its_sentence_ends() -> None:
    reply = "Sure, we can send a plumber to your kitchen. When would suit you, morning or afternoon?"
    assert await chunks(FirstClauseTextAggregator(), reply) == [
        "Sure,", "we can send a plumber to your kitchen.", "When would suit you, morning or afternoon?"]


async def test_every_reply_starts_with_a_clause_again() -> None:
    aggregator = FirstClauseTextAggregator()
    await chunks(aggregator, "Great, see you then.")
    assert await chunks(aggregator, "Okay, noted. Anything else?") == ["Okay,", "noted.", "Anything else?"]


async def test_an_interruption_rearms_the_first_clause() -> None:
    aggregator = FirstClauseTextAggregator()
    async for _ in aggregator.aggregate("Hello. We are open until six, and"):
        pass
    await aggregator.handle_interruption()
    assert await chunks(aggregator, "Well, sorry.") == ["Well,", "sorry."]


@pytest.mark.parametrize("reply, first", [
    ("It costs 1,000 dollars, roughly.", "It costs 1,000 dollars,"),  # a digit after the comma: no clause end
    ("Hello! Great, thanks.", "Hello!"),  # a sentence first: the rest is sentences
    ("Our number is five five five.", "Our number is five five five."),  # no clause mark at all
])
async def test_a_clause_ends_only_at_a_mark_followed_by_a_space(reply: str, first: str) -> None:
    assert (await chunks(FirstClauseTextAggregator(), reply))[0] == first


async def test_min_words_keeps_a_lone_word_with_its_clause() -> None:
    assert await chunks(FirstClauseTextAggregator(min_words=2), "Sure, we can, of course.") == [
        "Sure, we can,", "of course."]
