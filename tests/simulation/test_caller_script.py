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
                        {"barge_in": {"after_s": 0.6, "say": "second"}}, {"dtmf": "1#"}, {"say": "third"}]}
    assert caller_script.utterances(inline) == ["first", "second", "third"]
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
    {"steps": "say hi"},
    "no-such-script",
])
def test_invalid_scripts_are_refused(bad: object) -> None:
    with pytest.raises(ScriptError):
        caller_script.load(bad)  # type: ignore[arg-type]
