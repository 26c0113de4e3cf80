"""What the caller heard, from marks, echoes and clears (pure bookkeeping)."""

from __future__ import annotations

from voicebot_worker.marks import MarkTracker, PlaybackClock


def speak(tracker: MarkTracker, key: str, sentences: list[str]) -> list[str]:
    return [tracker.chunk_spoken(key, s) for s in sentences]


def test_fully_played_utterance_is_heard_completely():
    tracker = MarkTracker()
    tracker.add_intent("Hello there. How can I help?", complete=True)
    marks = speak(tracker, "ctx-1", ["Hello there.", "How can I help?"])
    tracker.utterance_finished("ctx-1")
    for name in marks:
        tracker.mark_echoed(name)
    [utterance] = tracker.utterances
    assert utterance.resolved and not utterance.interrupted
    assert utterance.record()["heard"] == "Hello there. How can I help?"
    assert utterance.record()["text"] == "Hello there. How can I help?"


def test_clear_drops_pending_chunks_and_keeps_intended_text():
    tracker = MarkTracker()
    intent = tracker.add_intent()
    intent.text = "We open at nine. We close at six. Weekends differ."
    first, second = speak(tracker, "ctx-1", ["We open at nine.", "We close at six."])
    tracker.mark_echoed(first)  # played before the caller talked
    assert tracker.clear_sent() is True  # second was still buffered at Twilio
    tracker.mark_echoed(second)  # Twilio returns pending marks when it clears
    [utterance] = tracker.utterances
    record = utterance.record()
    assert record["interrupted"] is True
    assert record["heard"] == "We open at nine."
    assert record["text"] == "We open at nine. We close at six. Weekends differ."
    assert utterance.chunks[1].state == "dropped"


def test_clear_with_nothing_playing_is_not_a_barge_in():
    tracker = MarkTracker()
    name = tracker.chunk_spoken("ctx-1", "Hi.")
    tracker.utterance_finished("ctx-1")
    tracker.mark_echoed(name)
    assert tracker.clear_sent() is False
    assert not tracker.utterances[0].interrupted


def test_utterances_claim_intents_in_order_and_new_contexts_start_new_utterances():
    tracker = MarkTracker()
    tracker.add_intent("Greeting.", complete=True)
    tracker.add_intent("Answer.", complete=True)
    speak(tracker, "a", ["Greeting."])
    speak(tracker, "b", ["Answer."])
    assert [u.text for u in tracker.utterances] == ["Greeting.", "Answer."]
    assert tracker.utterances[0].closed  # a new context closes the previous one


def test_discarded_intent_is_not_claimed():
    tracker = MarkTracker()
    tool_only = tracker.add_intent()
    tracker.discard_intent(tool_only)
    tracker.add_intent("Goodbye!", complete=True)
    speak(tracker, "x", ["Goodbye!"])
    assert tracker.utterances[0].text == "Goodbye!"


def test_resolved_callback_fires_once_when_last_mark_returns():
    tracker = MarkTracker()
    seen: list[str] = []
    tracker.on_resolved.append(lambda u: seen.append(u.key))
    marks = speak(tracker, "k", ["One.", "Two."])
    tracker.mark_echoed(marks[0])
    tracker.utterance_finished("k")
    assert seen == []
    tracker.mark_echoed(marks[1])
    tracker.mark_echoed(marks[1])
    assert seen == ["k"] and tracker.pending_marks == 0


def test_without_echoes_the_playback_clock_decides_what_a_clear_cut():
    now = [50.0]
    tracker = MarkTracker(clock=lambda: now[0])
    [heard] = speak(tracker, "a", ["Heard."])
    tracker.mark_sent(heard, expected_end=49.0)  # finished playing a second ago, echo never came
    tracker.utterance_finished("a")
    [cut] = speak(tracker, "b", ["Cut."])
    tracker.mark_sent(cut, expected_end=51.0)  # still playing
    tracker.clear_sent()
    first, second = tracker.finalize()
    assert first.heard == "Heard." and not first.interrupted
    assert second.heard == "" and second.interrupted


def test_finalize_counts_unechoed_marks_as_played_when_nothing_was_cleared():
    tracker = MarkTracker()
    speak(tracker, "a", ["Heard."])
    [utterance] = tracker.finalize()
    assert utterance.heard == "Heard." and not utterance.interrupted


def test_playback_clock_follows_real_time_and_clear():
    now = [100.0]
    clock = PlaybackClock(now=lambda: now[0])
    clock.on_media(0.02)
    clock.on_media(0.02)
    assert abs(clock.play_end - 100.04) < 1e-9
    now[0] = 101.0  # a gap: playback restarts from now
    clock.on_media(0.5)
    assert abs(clock.remaining_s() - 0.5) < 1e-9
    clock.on_clear()
    assert clock.remaining_s() == 0.0


def test_the_utterance_answering_the_caller_carries_the_turn_latency():
    now = [100.0]
    tracker = MarkTracker(clock=lambda: now[0])
    speak(tracker, "greeting", ["Hello."])  # no caller turn before it: no latency
    tracker.utterance_finished("greeting")
    now[0] = 105.0
    # The first audio of the answer went out before the TTS reported its chunk (the usual order).
    tracker.answered(speech_end=104.2, latency_s=0.8)
    speak(tracker, "answer-1", ["Sure."])
    now[0] = 110.0
    speak(tracker, "answer-2", ["Anything else?"])  # reported first, its audio after
    tracker.answered(speech_end=109.5, latency_s=0.65)
    records = [u.record() for u in tracker.utterances]
    assert "latency_ms" not in records[0]
    assert [r["latency_ms"] for r in records[1:]] == [800, 650]


def test_an_answer_cut_before_its_chunk_was_reported_leaves_no_latency_behind():
    now = [100.0]
    tracker = MarkTracker(clock=lambda: now[0])
    tracker.answered(speech_end=99.0, latency_s=1.0)
    tracker.clear_sent()  # the caller barged in: that audio is gone before a chunk of it was spoken
    speak(tracker, "idle", ["Are you still there?"])
    assert "latency_ms" not in tracker.utterances[0].record()


def test_a_chunk_whose_mark_never_went_out_is_dropped_at_the_clear():
    """Its mark was still in the pipeline when `clear` went out, so the interruption drops it and no
    echo will ever come: the utterance resolves at once instead of waiting forever."""
    tracker = MarkTracker()
    played, sent, _unsent = speak(tracker, "ctx-1", ["One.", "Two.", "Three."])
    tracker.mark_sent(played, expected_end=0.0)
    tracker.mark_sent(sent, expected_end=1e12)
    tracker.mark_echoed(played)
    tracker.clear_sent()
    [utterance] = tracker.utterances
    assert [c.state for c in utterance.chunks] == ["played", "pending", "dropped"]
    tracker.mark_echoed(sent)  # Twilio returns the sent one on `clear`
    assert utterance.resolved and utterance.heard == "One."


def test_a_held_mark_echoed_by_the_pause_clear_is_not_heard_until_sent_again_and_echoed():
    tracker = MarkTracker()
    tracker.add_intent("We open at nine. We close at six.", complete=True)
    first, second = speak(tracker, "ctx-1", ["We open at nine.", "We close at six."])
    tracker.utterance_finished("ctx-1")
    tracker.mark_sent(first, 1.0)
    tracker.mark_sent(second, 2.0)
    tracker.mark_echoed(first)
    tracker.hold([second])  # a backchannel paused the bot: its audio was taken back from the phone
    tracker.mark_echoed(second)  # Twilio returns it for the pause's `clear`
    [utterance] = tracker.utterances
    assert utterance.chunks[1].state == "pending" and not utterance.resolved
    tracker.mark_sent(second, 3.0)  # sent again on resume
    tracker.mark_echoed(second)  # played this time
    assert utterance.resolved and not utterance.interrupted
    assert utterance.record()["heard"] == "We open at nine. We close at six."


def test_a_held_mark_is_unheard_when_the_pause_ends_in_an_interruption():
    tracker = MarkTracker()
    tracker.add_intent("We open at nine. We close at six.", complete=True)
    first, second = speak(tracker, "ctx-1", ["We open at nine.", "We close at six."])
    tracker.mark_sent(first, 1.0)
    tracker.mark_sent(second, 2.0)
    tracker.mark_echoed(first)
    tracker.hold([second])
    tracker.mark_echoed(second)  # the pause's `clear`
    assert tracker.clear_sent() is True  # then the caller's speech became a turn
    [utterance] = tracker.utterances
    assert utterance.chunks[1].state == "dropped" and utterance.resolved
    assert utterance.record()["heard"] == "We open at nine." and utterance.interrupted


def test_an_utterance_the_tts_had_finished_is_resolved_at_the_clear_that_cut_it():
    """Everything synthesised before the caller barged in: the held mark's echo says nothing and the last
    sentences' marks never went out, so the clear is the only moment it can resolve (the heard-context
    rewrite waits for it)."""
    tracker = MarkTracker()
    resolved = []
    tracker.on_resolved.append(resolved.append)
    tracker.add_intent("We open at nine. We close at six. Weekends differ.", complete=True)
    first, second, _third = speak(tracker, "ctx-1", ["We open at nine.", "We close at six.", "Weekends differ."])
    tracker.utterance_finished("ctx-1")  # the TTS is done with it
    tracker.mark_sent(first, 1.0)
    tracker.mark_sent(second, 2.0)
    tracker.mark_echoed(first)
    tracker.hold([second])  # the pause took it back
    tracker.mark_echoed(second)  # the pause's `clear`
    assert not resolved
    assert tracker.clear_sent() is True  # the caller's speech became a turn
    [utterance] = resolved
    assert utterance.interrupted and utterance.heard == "We open at nine."
