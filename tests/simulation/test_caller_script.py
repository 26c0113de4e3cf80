"""Caller scripts: the format the emulator's phone plays and the bot-worker's fake STT transcribes."""

from __future__ import annotations

import pytest

from voicebot_simulation import caller_script
from voicebot_simulation.caller_script import ScriptError


def test_utterances_are_say_and_barge_in_texts_in_step_order(tmp_path) -> None:
    assert caller_script.utterances("three-turns") == [
        "I would like to check my order status",
        "my order number is four two seven",
        "thank you, that is all for today",
    ]
    inline = {"steps": [{"wait_for_bot": {}}, {"say": "first"}, {"silence": 1},
                        {"barge_in": {"after_s": 0.6, "say": "second"}}, {"dtmf": "1#"}, {"say": "third"},
                        {"backchannel": {"after_s": 1, "say": "uh-huh", "seconds": 0.2}}]}
    assert caller_script.utterances(inline) == ["first", "second", "third", "uh-huh"]
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nsteps:\n  - say: hi there\n  - pause: 0.5\n  - hangup: {}\n")
    loaded = caller_script.load(str(path))
    assert loaded.name == "mine" and [s.kind for s in loaded.steps] == ["say", "silence", "hangup"]
    assert caller_script.utterances(str(path)) == ["hi there"]
    assert set(caller_script.builtin_names()) >= {"three-turns", "outbound-default", "barge-in", "listen"}
    for name in caller_script.builtin_names():
        assert caller_script.load(name).steps


@pytest.mark.parametrize("bad", [
    {"steps": [{"shout": "x"}]},
    {"steps": [{"barge_in": {"after_s": 1}}]},
    {"steps": [{"backchannel": {"seconds": 0.2}}]},
    {"steps": "say hi"},
    "no-such-script",
])
def test_invalid_scripts_are_refused(bad: object) -> None:
    with pytest.raises(ScriptError):
        caller_script.load(bad)  # type: ignore[arg-type]


def test_a_backchannel_may_play_a_sound_instead_of_words_and_then_says_nothing():
    script = caller_script.parse({"steps": [
        {"say": "hours?"}, {"backchannel": {"after_s": 1.0, "play": "cough.wav", "seconds": 0.25}},
        {"backchannel": {"say": "uh-huh"}}]})
    assert script.steps[1].args["play"] == "cough.wav"
    assert caller_script.utterances(script) == ["hours?", "uh-huh"]  # the fake STT has no words for a cough
    with pytest.raises(ScriptError, match="backchannel needs"):
        caller_script.parse({"steps": [{"backchannel": {"after_s": 1.0}}]})
