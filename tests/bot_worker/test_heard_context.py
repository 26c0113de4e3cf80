"""An interrupted reply in the LLM context becomes what the caller heard of it."""

from __future__ import annotations

from pipecat.processors.aggregators.llm_context import LLMContext

from voicebot_worker.heard_context import HeardContext
from voicebot_worker.marks import BotUtterance, MarkTracker

REPLY = "We open at nine. We close at six. Weekends differ."
SENT = "We open at nine. We close at six."


class Reply:
    """A reply the bot speaks (two chunks) and the caller cuts after `heard` of them."""

    def __init__(self, tracker: MarkTracker, key: str = "c1", text: str = REPLY) -> None:
        self.tracker = tracker
        tracker.add_intent(text, complete=True)
        self.marks = [tracker.chunk_spoken(key, s) for s in ["We open at nine.", "We close at six."]]

    def cut(self, heard: int) -> BotUtterance:
        for name in self.marks[:heard]:
            self.tracker.mark_echoed(name)
        self.tracker.clear_sent()
        for name in self.marks[heard:]:
            self.tracker.mark_echoed(name)
        return self.tracker.utterances[-1]


def turn(context: LLMContext, heard: HeardContext, content: str) -> bool:
    """What pipecat's assistant aggregator does at a turn's end: add the message, report the turn."""
    context.add_message({"role": "assistant", "content": content})
    return heard.assistant_turn_stopped(content)


def contents(context: LLMContext) -> list[str]:
    return [m["content"] for m in context.get_messages()[1:]]


def setup() -> tuple[LLMContext, HeardContext, MarkTracker]:
    context = LLMContext(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hours?"}])
    return context, HeardContext(context), MarkTracker()


def test_the_interrupted_message_becomes_the_heard_part():
    context, heard, tracker = setup()
    reply = Reply(tracker)
    turn(context, heard, SENT)
    assert heard.utterance_resolved(reply.cut(heard=1))
    assert contents(context) == ["hours?", "We open at nine."]


def test_marks_back_before_the_message_and_after_the_next_user_turn():
    context, heard, tracker = setup()
    utterance = Reply(tracker).cut(heard=1)
    assert not heard.utterance_resolved(utterance)  # the marks came back first: nothing to edit yet
    assert turn(context, heard, SENT)
    context.add_message({"role": "user", "content": "wait, one more question"})
    assert contents(context) == ["hours?", "We open at nine.", "wait, one more question"]
    assert not heard.apply()  # done once


def test_the_matching_message_is_edited_not_the_last_one():
    context, heard, tracker = setup()
    reply = Reply(tracker)
    turn(context, heard, SENT)
    context.add_message({"role": "user", "content": "and on sundays?"})
    turn(context, heard, "Closed on Sundays.")
    heard.utterance_resolved(reply.cut(heard=1))
    assert contents(context) == ["hours?", "We open at nine.", "and on sundays?", "Closed on Sundays."]


def test_an_earlier_reply_with_the_same_words_heard_whole_is_left_alone():
    context, heard, tracker = setup()
    turn(context, heard, SENT)  # said and heard before this reply began
    context.add_message({"role": "user", "content": "again?"})
    utterance = Reply(tracker).cut(heard=1)
    assert not heard.utterance_resolved(utterance)
    assert contents(context) == ["hours?", SENT, "again?"]
    turn(context, heard, SENT)
    assert contents(context) == ["hours?", SENT, "again?", "We open at nine."]


def test_a_reply_nobody_heard_leaves_the_context():
    context, heard, tracker = setup()
    reply = Reply(tracker)
    turn(context, heard, "We open at nine.")
    context.add_message({"role": "user", "content": "wait"})
    assert heard.utterance_resolved(reply.cut(heard=0))
    assert [m["role"] for m in context.get_messages()] == ["system", "user", "user"]


def test_a_reply_heard_whole_is_left_alone():
    context, heard, tracker = setup()
    reply = Reply(tracker, text=SENT)
    tracker.utterance_finished("c1")
    for name in reply.marks:
        tracker.mark_echoed(name)
    turn(context, heard, SENT)
    assert not heard.utterance_resolved(tracker.utterances[0])
    assert contents(context) == ["hours?", SENT]
