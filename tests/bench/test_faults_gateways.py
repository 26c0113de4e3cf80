"""bench/faults_gateways.py's scenarios with two calls: two gateways behind haproxy, one of them SIGTERMed
(drained: no call dropped, new calls served) or killed (its calls marked failed, the other's untouched).
Counts are asserted, not timings."""

from __future__ import annotations

import argparse
import re

import pytest
from faults_gateways import SCENARIOS

from voicebot_devstack.load_balancer import haproxy_binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed (make deps installs it)"),
]

ARGS = argparse.Namespace(calls=2)


def _run(name: str):
    row = SCENARIOS[name](ARGS)
    print("\n".join([row.line(), *row.notes]))  # shown when a test fails
    return row


def _note(row, pattern: str) -> re.Match:
    found = next((m for m in (re.search(pattern, note) for note in row.notes) if m), None)
    assert found, f"no note matching {pattern!r}: {row.notes}"
    return found


def _streams_on_both_gateways(row) -> None:
    spread = _note(row, r"streams: gateway-0 (\d+), gateway-1 (\d+)")
    assert int(spread[1]) >= 1 and int(spread[2]) >= 1, row.notes


def test_gateway_sigterm_drops_no_call():
    row = _run("gateway-sigterm")
    _streams_on_both_gateways(row)
    assert row.cells["calls"] == "4", row.notes  # two live at the SIGTERM, two placed right after it
    assert row.cells["dropped"] == "0", row.notes
    assert row.cells["turns lost"] == "0", row.notes
    assert row.cells["transcr lost"] == "0", row.notes
    _note(row, r"gateway-\d exited with 0 after its calls ended")


def test_gateway_kill_marks_its_calls_failed_and_spares_the_others():
    row = _run("gateway-kill")
    _streams_on_both_gateways(row)
    assert row.cells["calls"] == "2", row.notes
    assert row.cells["dropped"] == "0", row.notes  # the surviving gateway's calls
    assert row.cells["turns lost"] == "0", row.notes
    assert row.cells["transcr lost"] == "0", row.notes
    marked = _note(row, r"killed gateway's calls: (\d+) of (\d+) marked failed")
    assert int(marked[2]) >= 1 and marked[1] == marked[2], row.notes
    assert row.cells["recover s"] != "n/a", row.notes
