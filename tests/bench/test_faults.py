"""bench/faults.py's scenarios as tests: real processes, each fault injected while calls or a campaign
run, and the counts the harness prints asserted (how fast it recovered is the bench's to print)."""

from __future__ import annotations

import argparse

import pytest
from fault_harness import Row
from faults import (
    TWILIO_FAULTS,
    scenario_dialer_worker_kill,
    scenario_no_free_worker,
    scenario_twilio_faults,
    scenario_worker_freeze,
    scenario_worker_kill,
)

from voicebot_gateway.settings import GatewaySettings
from voicebot_worker.settings import WorkerSettings

pytestmark = pytest.mark.slow

# A worker stores a call's recording in segments as it goes: one that dies loses the segment it was
# recording, and nobody records the call until it is on its new worker (the gateway's liveness timeout at most).
REC_LOST_PER_CALL_S = (WorkerSettings.model_fields["worker_recording_segment_s"].default
                       + GatewaySettings.model_fields["gateway_worker_liveness_timeout_s"].default)


def small_run(**overrides: float) -> argparse.Namespace:
    return argparse.Namespace(**{"calls": 2, "contacts": 12, "cps": 2.0, "job_deadline": 60.0, **overrides})


def figures(row: Row) -> dict[str, str]:
    print("\n".join([row.line(), *row.notes]))  # shown when a test fails
    return row.cells


def assert_conversations_whole(cells: dict[str, str]) -> None:
    assert (cells["dropped"], cells["turns lost"], cells["transcr lost"]) == ("0", "0", "0"), cells
    assert float(cells["rec s lost"]) <= int(cells["calls"]) * REC_LOST_PER_CALL_S, cells


def test_a_killed_workers_calls_go_on_elsewhere_with_nothing_lost() -> None:
    cells = figures(scenario_worker_kill(small_run()))
    assert cells["calls"] == "2"
    assert_conversations_whole(cells)
    assert cells["recover s"] != "n/a", "every call on the killed worker re-attached"


def test_a_frozen_workers_calls_go_on_elsewhere_with_nothing_lost() -> None:
    cells = figures(scenario_worker_freeze(small_run()))
    assert_conversations_whole(cells)
    assert cells["recover s"] != "n/a", "every call on the frozen worker re-attached"


def test_callers_beyond_capacity_hear_the_busy_message_never_silence() -> None:
    cells = figures(scenario_no_free_worker(small_run()))
    assert cells["calls"] == "4"
    assert cells["dropped"] == "0", cells  # everyone heard the bot or the busy message


def test_a_killed_dialer_worker_loses_no_job_and_dials_nobody_twice() -> None:
    run = small_run()
    cells = figures(scenario_dialer_worker_kill(run))
    assert (cells["jobs lost"], cells["dbl dials"]) == ("0", "0"), cells
    most, limit = cells["max cps"].split("/")
    assert int(most) <= float(limit) == run.cps, cells
    assert cells["recover s"] != "n/a", "the dead worker's jobs were placed or ended by another"


def test_slow_and_failing_twilio_rest_dials_nobody_twice_and_every_job_ends() -> None:
    run = small_run(contacts=8)
    row = scenario_twilio_faults(run)
    cells = figures(row)
    assert (cells["jobs lost"], cells["dbl dials"]) == ("0", "0"), cells
    # The calls Twilio made without a 201 were adopted (from a status callback or a look-up), never
    # dialed again; the 500 that made no call was looked up twice, then a second attempt dialed.
    no_call = sum(1 for _, fault in TWILIO_FAULTS if fault.get("make_call", True) is False and fault["status"] >= 500)
    assert row.counts["placement_lost"] == no_call == 1, row.counts
    assert row.counts["placement_rate_limited"] == 1, row.counts
    assert row.counts["contacts never called"] == 0, row.counts
