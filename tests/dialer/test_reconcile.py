"""The reconciler against a Twilio stand-in that is slow or fails: a placement whose create may
have reached Twilio is never dialed again until Twilio says it has no such call."""

from __future__ import annotations

import threading
import time

from dialer_helpers import wait_for
from fastapi.testclient import TestClient
from stand_in_fixtures import age, new_placement, place_due

from helpers.twilio_calls_stand_in import CallsStandIn, CreateAnswer
from voicebot_dialer.reconcile import LOOKUP_MAX_FAILURES
from voicebot_dialer.service import DialerService


def kinds(dialer: DialerService, job_id: str) -> list[str]:
    return [e["kind"] for e in dialer.store.events(job_id)]


def test_a_create_twilio_finishes_after_the_placing_timeout_places_one_call(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    timeout = dialer.settings.dialer_placing_timeout_s  # 2 s; the REST client's: 1 s
    # Twilio makes the call 3.5 s after the request and answers at 4 s: after the first look-up.
    calls_stand_in.create_answers.append(CreateAnswer(made_after_s=3.5, answer_after_s=4.0))
    job_id, *_ = task = new_placement(api, dialer, "+14155550901")
    placing: dict[str, object] = {}

    def place() -> None:  # the worker, while the dispatch loop reconciles
        started = time.monotonic()
        placing["result"] = dialer.place(*task)
        placing["took_s"] = time.monotonic() - started
    worker = threading.Thread(target=place)
    worker.start()
    wait_for(lambda: dialer.redis.zscore(dialer.keys.dial_placing(), job_id), 5, "the job to be placing")
    time.sleep(timeout + 0.1)
    dialer.reconcile_stuck_placements()  # Twilio lists no call yet
    assert (dialer.store.get(job_id)["state"], dialer.store.get(job_id)["attempt"]) == ("placing", 1)
    assert place_due(dialer) == []  # nothing dials again
    worker.join(10)
    assert placing["result"] == "uncertain" and placing["took_s"] < timeout, placing

    wait_for(lambda: calls_stand_in.calls_to("+14155550901"), 8, "Twilio to make the call")
    age(dialer, job_id)
    assert dialer.reconcile_stuck_placements() == 1
    job = dialer.store.get(job_id)
    [call] = calls_stand_in.calls_to("+14155550901")
    assert (job["state"], job["attempt"], job["call_sid"]) == ("ringing", 1, call["sid"])
    assert place_due(dialer) == [] and dialer.reconcile_stuck_placements() == 0
    assert len(calls_stand_in.creates) == 1  # the callee's phone rang once
    steps = [k for k in kinds(dialer, job_id) if k.startswith("placement_")]
    assert steps == ["placement_uncertain", "placement_not_found", "placement_reconciled"]


def test_a_create_answered_502_after_twilio_made_the_call_is_adopted_not_redialed(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(status=502))  # a proxy's 502; the call exists
    calls_stand_in.list_errors += [503, 429]  # and the first look-ups fail
    job_id, *_ = task = new_placement(api, dialer, "+14155550902")
    assert dialer.place(*task) == "uncertain"
    for failures in (1, 2):
        age(dialer, job_id)
        assert dialer.reconcile_stuck_placements() == 0
        job = dialer.store.get(job_id)
        assert (job["state"], job["attempt"], int(job["lookup_failures"])) == ("placing", 1, failures)
        assert place_due(dialer) == []
    # Each failure pushed the next look-up back (2 s, then 4 s): not looked up before then.
    assert dialer.reconcile_stuck_placements() == 0 and calls_stand_in.list_errors == []
    next_look = dialer.redis.zscore(dialer.keys.dial_placing(), job_id) + dialer.settings.dialer_placing_timeout_s
    assert next_look > time.time() + 3
    age(dialer, job_id)
    assert dialer.reconcile_stuck_placements() == 1
    job = dialer.store.get(job_id)
    assert (job["state"], job["call_sid"]) == ("ringing", calls_stand_in.calls[0]["sid"])
    assert len(calls_stand_in.creates) == 1


def test_failing_look_ups_end_the_job_placement_unknown_never_redialed(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(status=504, made_after_s=None))
    calls_stand_in.list_errors += [503] * LOOKUP_MAX_FAILURES
    job_id, *_ = task = new_placement(api, dialer, "+14155550903")
    assert dialer.place(*task) == "uncertain"
    for _ in range(LOOKUP_MAX_FAILURES):
        assert dialer.store.get(job_id)["state"] == "placing"
        age(dialer, job_id)
        dialer.reconcile_stuck_placements()
        assert place_due(dialer) == []
    job = dialer.store.get(job_id)
    assert (job["state"], job["outcome"], job["attempt"]) == ("failed", "placement-unknown", 1)
    assert kinds(dialer, job_id).count("placement_lookup_failed") == LOOKUP_MAX_FAILURES - 1
    assert dialer.redis.zscore(dialer.keys.dial_placing(), job_id) is None
    assert dialer.redis.zscore(dialer.keys.dial_schedule(), job_id) is None
    assert len(calls_stand_in.creates) == 1


def test_two_candidate_calls_are_not_adopted_and_not_redialed(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(answer_after_s=3))  # made, answered too late
    job_id, *_ = task = new_placement(api, dialer, "+14155550904")
    job = dialer.store.get(job_id)
    calls_stand_in.make_call(job["to"], job["from"])  # another call between the same numbers, same time
    assert dialer.place(*task) == "uncertain"
    age(dialer, job_id)
    assert dialer.reconcile_stuck_placements() == 0
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"], job.get("call_sid", "")) == ("placing", 1, "")
    [failed] = [e for e in dialer.store.events(job_id) if e["kind"] == "placement_lookup_failed"]
    assert failed["error"] == "2 calls to the number could be this attempt's"
    assert place_due(dialer) == []
    assert len(calls_stand_in.creates) == 1


def test_twilio_listing_no_call_twice_ends_the_attempt_and_the_next_one_dials(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(status=503, made_after_s=None))  # no call made
    job_id, *_ = task = new_placement(api, dialer, "+14155550905")
    assert dialer.place(*task) == "uncertain"
    age(dialer, job_id)
    assert dialer.reconcile_stuck_placements() == 0
    age(dialer, job_id)
    assert dialer.reconcile_stuck_placements() == 1
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"], job["attempts"][0]["result"]) == ("scheduled", 2, "placement-lost")
    wait_for(lambda: place_due(dialer) == ["placed"], 5, "the second attempt to be placed")
    assert len(calls_stand_in.creates) == 2 and len(calls_stand_in.calls) == 1
