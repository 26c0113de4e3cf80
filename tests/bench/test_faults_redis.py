"""bench/faults_redis.py's scenarios with two live calls and a small campaign: nothing dropped or lost."""

import argparse

import pytest
from faults_redis import SCENARIOS

ZERO = ("dropped", "turns lost", "transcr lost", "rec s lost", "jobs lost", "dbl dials")


@pytest.mark.parametrize("scenario", ["redis-restart", "redis-outage"])
def test_a_redis_fault_drops_and_loses_nothing(scenario: str) -> None:
    args = argparse.Namespace(calls=2, contacts=4, cps=2.0, job_deadline=60.0)
    row = SCENARIOS[scenario](args)
    report = f"{row.line()}\n" + "\n".join(row.notes)
    assert {column: row.cells.get(column) for column in ZERO} == {
        "dropped": "0", "turns lost": "0", "transcr lost": "0", "rec s lost": "0.0", "jobs lost": "0",
        "dbl dials": "0"}, report
    assert row.cells["calls"] == "2" and row.cells["recover s"] != "n/a", report
    assert "every process alive at the end" in row.notes, report
    if scenario == "redis-outage":
        assert any(note.startswith("2 callers during the outage: 2 heard the busy message") for note in row.notes), \
            report
