"""bench/faults_sentinel.py's redis-failover, small: kill -9 of the Redis primary (under Sentinel)
mid-call and mid-campaign loses no call, turn, transcript turn or dial job, and dials nobody twice."""

from __future__ import annotations

import argparse

from faults_sentinel import SCENARIOS


def test_redis_failover_loses_nothing() -> None:
    row = SCENARIOS["redis-failover"](argparse.Namespace(calls=2, contacts=4, cps=2.0, job_deadline=60.0))
    notes = "\n".join(row.notes)
    assert row.cells["calls"] == "2+4"
    for column in ("dropped", "turns lost", "transcr lost", "jobs lost", "dbl dials"):
        assert row.cells[column] == "0", f"{column}: {row.cells[column]}\n{notes}"
    for not_mid_fault in ("campaign create seen before", "not every call", "campaign already over"):
        assert not_mid_fault not in notes, notes
    assert 0 < float(row.cells["recover s"]) < 15, notes
