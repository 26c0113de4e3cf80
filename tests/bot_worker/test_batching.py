"""Batches across calls: each call once per pass, its items in order."""

from voicebot_worker.batching import passes


def test_each_key_appears_once_per_pass_and_in_its_order():
    keys = ["a", "b", "a", "c", "a", "b"]
    assert passes(keys) == [[0, 1, 3], [2, 5], [4]]


def test_no_items_no_passes():
    assert passes([]) == []
