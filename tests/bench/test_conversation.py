"""bench/conversation.py's scoring, on phone reports written by hand: each figure counts what its name says."""

from __future__ import annotations

import conversation
import numpy as np
import pytest
from conversation_corpus import BACKCHANNELS, BARGE_INS, COMPLETE, PAUSED, build_corpus


@pytest.fixture
def corpus(tmp_path):
    return build_corpus(tmp_path / "corpus", models_dir=tmp_path)  # no Piper weights there: the formant voice


def _report(said, heard=(), clears=(), connected=0.0):
    return {"said": [{"text": t, "start": a, "end": b} for t, a, b in said],
            "heard": [{"start": a, "end": b} for a, b in heard], "clears": list(clears),
            "timeline": [{"t": connected, "event": "stream-connected", "detail": {}}]}


def _empty():
    return _report([])


def test_a_reply_during_a_mid_sentence_pause_is_a_cut_in_and_one_after_the_sentence_is_not(corpus):
    (first, _, second), (first2, _, second2) = PAUSED[0], PAUSED[1]
    paused = _report([(first, 1.0, 2.0), (second, 3.0, 4.0), (first2, 10.0, 11.0), (second2, 12.0, 13.0)],
                     heard=[(2.5, 3.5), (13.6, 15.0)])
    figures = conversation.Figures()
    conversation.score(corpus, {"paused": paused, "complete": _empty(), "backchannel": _empty(),
                                "barge": _empty()}, figures)
    assert (figures.cut_ins, figures.paused_turns, figures.caller_overlaps) == (1, 2, 0)


def test_replies_on_complete_questions_count_fallbacks_and_unanswered(corpus):
    complete = _report([(COMPLETE[0], 1.0, 2.0), (COMPLETE[1], 5.0, 6.0), (COMPLETE[2], 20.0, 21.0)],
                       heard=[(2.6, 4.0), (9.0, 10.0)])
    figures = conversation.Figures()
    conversation.score(corpus, {"complete": complete, "paused": _empty(), "backchannel": _empty(),
                                "barge": _empty()}, figures)
    assert figures.replies == pytest.approx([0.6, 3.0])
    assert (figures.fallbacks, figures.unanswered) == (1, 1)


def test_a_barge_in_counts_its_clear_and_the_bot_audio_heard_after_it(corpus):
    barge = _report([(BARGE_INS[0], 10.0, 11.5), (BARGE_INS[1], 30.0, 31.0)],
                    heard=[(8.0, 10.5), (31.5, 33.0)], clears=[10.2])
    figures = conversation.Figures()
    conversation.score(corpus, {"barge": barge, "complete": _empty(), "paused": _empty(),
                                "backchannel": _empty()}, figures)
    assert figures.barge_clears == pytest.approx([0.2])
    assert figures.audio_after_clear == pytest.approx([0.28])  # 10.22 (the tick after) -> 10.5: the cut reply
    assert figures.barge_missed == 1
    assert figures.barge_silent == pytest.approx([0.5])  # the last bot audio before the caller finished: 10.5


def test_a_backchannel_after_which_the_reply_does_not_go_on_is_a_false_interruption(corpus):
    # "uh-huh" at 5.0: the bot pauses (a clear at 5.2) and goes on at 5.8; "okay" at 20.0: the reply
    # never comes back; a noise burst at 40.0 under a reply that plays on, no clear
    backchannel = _report([(BACKCHANNELS[0], 5.0, 5.3), (BACKCHANNELS[1], 20.0, 20.3)],
                          heard=[(4.0, 5.1), (5.8, 9.0), (18.0, 20.1), (30.0, 31.0), (38.0, 45.0)],
                          clears=[5.2, 20.1])
    sound = next(item.label for item in corpus.backchannels if item.label.endswith(".wav"))
    backchannel["said"].append({"play": sound, "start": 40.0, "end": 40.2})
    figures = conversation.Figures()
    conversation.score(corpus, {"backchannel": backchannel, "complete": _empty(), "paused": _empty(),
                                "barge": _empty()}, figures)
    assert (figures.false_interruptions, figures.backchannels) == (1, 3)
    assert figures.backchannel_gaps == pytest.approx([0.7, 0.0])  # 5.1 -> 5.8; none under the noise
    assert figures.backchannel_paused == 1


def test_greeting_latency_runs_from_the_stream_connecting_to_the_first_bot_audio():
    assert conversation.greeting_s(_report([], heard=[(3.2, 5.0)], connected=3.0)) == pytest.approx(0.2)
    assert conversation.greeting_s(_report([], connected=3.0)) is None


def test_the_corpus_manifest_names_every_item(corpus):
    manifest = (corpus.profiles_path.parent / "manifest.json").read_text()
    assert all(text in manifest for text in [*COMPLETE, *BARGE_INS, *(p[2] for p in PAUSED)])
    assert (len(corpus.complete), len(corpus.paused)) == (12, 12)


def test_every_complete_question_is_one_vad_segment_in_the_piper_voice():
    """The fake STT hears one script line per VAD segment: a pause inside a question shifts every later one."""
    from voicebot_emulator.neural_voice import PiperVoice
    from voicebot_worker.providers import local
    from voicebot_worker.settings import WorkerSettings

    voice_dir = local.models_dir() / local.PIPER_DIR
    if not voice_dir.is_dir():
        pytest.skip(f"no Piper voice at {voice_dir}: run `make models-small`")
    voice, stop_s = PiperVoice(voice_dir), WorkerSettings().worker_vad_stop_secs
    for text in COMPLETE:
        frames = voice.synthesize(text, 8000).astype(np.float32)
        frames = frames[:len(frames) // 160 * 160].reshape(-1, 160)  # 20 ms
        voiced = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) > 300)
        longest_gap_s = (np.diff(voiced).max(initial=1) - 1) * 0.02
        assert longest_gap_s < stop_s, f"{text!r}: a {longest_gap_s:.2f} s pause, VAD stops after {stop_s} s"
