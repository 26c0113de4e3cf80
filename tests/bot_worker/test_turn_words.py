"""Which transcripts sound unfinished: the words that hold a turn's end through a mid-sentence pause."""

from __future__ import annotations

import pytest

from voicebot_worker.turn_words import sounds_unfinished

UNFINISHED = ["I would like to", "My order number is", "Could you tell me", "I ordered a blue jacket and",
              "The thing is", "Can you", "I think", "Well", "So the address should be", "I am calling because",
              "Let me see", "Yes and", "I was going to say,", "I would like to...", "Um", "the reference is a b -"]
FINISHED = ["I would like to check the status of my order.", "Thank you", "Yes, I can", "I will", "No, I don't",
            "I think so", "Where are you from?", "What are you looking at?", "Okay", "Uh-huh", "That is all",
            "I want it", "", "Four two seven"]


@pytest.mark.parametrize("text", UNFINISHED)
def test_a_sentence_stopped_where_it_cannot_end_sounds_unfinished(text):
    assert sounds_unfinished(text)


@pytest.mark.parametrize("text", FINISHED)
def test_a_sentence_that_can_end_there_does_not(text):
    assert not sounds_unfinished(text)
