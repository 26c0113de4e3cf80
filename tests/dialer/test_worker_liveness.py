"""Dialer worker liveness: the jobs a dead worker held are taken back within seconds, never those of
a live worker, and never by a worker that cannot reach Redis to beat itself."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from stand_in_fixtures import age, dispatch, new_placement

from helpers.twilio_calls_stand_in import CallsStandIn, CreateAnswer
from voicebot_dialer.service import DialerService
from voicebot_dialer.worker_liveness import WorkerLiveness

SELF, DEAD, ALIVE = "host:1", "host:2", "host:3"


def beats(dialer: DialerService, silent_s: dict[str, float]) -> None:
    """Each worker's last beat, `silent_s` seconds ago; this process beats now as SELF."""
    now = time.time()
    dialer.redis.zadd(dialer.keys.dialer_workers(), {w: now - s for w, s in silent_s.items()})
    dialer.liveness.beat(SELF)


def test_a_dispatched_job_of_a_dead_worker_is_dispatched_again_long_before_its_lease_ends(
        api: TestClient, stand_in_dialer: DialerService) -> None:
    dialer = stand_in_dialer
    assert dialer.settings.dialer_dispatch_lease_s == 60  # the default
    job_id, attempt, token = new_placement(api, dialer, "+14155550801")
    assert dialer.liveness.hold(job_id, token, DEAD)
    beats(dialer, {DEAD: dialer.settings.dialer_worker_liveness_s + 1})
    assert dispatch(dialer) == []  # its lease still runs

    assert dialer.reclaim_from_dead_workers() == 1
    [(again_id, again_attempt, again_token)] = dispatch(dialer)
    assert (again_id, again_attempt) == (job_id, attempt) and again_token != token
    assert [e["kind"] for e in dialer.store.events(job_id)].count("redispatched") == 1
    assert dialer.liveness.holder(job_id) is None  # the next worker to receive it holds it
    assert dialer.place(job_id, attempt, token) == "stale"  # the dead worker's task, were it redelivered
    assert dialer.place(again_id, again_attempt, again_token) == "placed"


def test_jobs_of_a_live_or_unknown_worker_stay_with_it(api: TestClient, stand_in_dialer: DialerService) -> None:
    dialer = stand_in_dialer
    live_job, _, live_token = new_placement(api, dialer, "+14155550802")
    unknown_job, _, unknown_token = new_placement(api, dialer, "+14155550803")
    assert dialer.liveness.hold(live_job, live_token, ALIVE)
    assert dialer.liveness.hold(unknown_job, unknown_token, "never-beat:9")  # received before its first beat
    beats(dialer, {ALIVE: 0.5})
    assert dialer.reclaim_from_dead_workers() == 0
    assert dispatch(dialer) == []
    assert dialer.liveness.holder(live_job) == ALIVE


def test_a_stale_task_names_no_holder(api: TestClient, stand_in_dialer: DialerService) -> None:
    dialer = stand_in_dialer
    job_id, _, token = new_placement(api, dialer, "+14155550804")
    assert not dialer.liveness.hold(job_id, "an-earlier-dispatch", DEAD)
    assert dialer.liveness.holder(job_id) is None
    assert dialer.liveness.hold(job_id, token, ALIVE)


def test_a_worker_whose_own_beat_is_old_judges_nobody(api: TestClient, stand_in_dialer: DialerService) -> None:
    dialer = stand_in_dialer
    job_id, _, token = new_placement(api, dialer, "+14155550805")
    dialer.liveness.hold(job_id, token, DEAD)
    beats(dialer, {DEAD: 60})
    cut_off = WorkerLiveness(dialer.redis, dialer.keys, dialer.settings.dialer_worker_liveness_s)  # never beat
    assert cut_off.jobs_of_dead_workers() == {}
    assert dialer.liveness.jobs_of_dead_workers() == {job_id: DEAD}


def test_a_placing_job_of_a_dead_worker_is_looked_up_at_once_and_its_call_adopted(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(answer_after_s=3))  # made, the answer never seen
    job_id, attempt, token = new_placement(api, dialer, "+14155550806")
    dialer.liveness.hold(job_id, token, DEAD)
    assert dialer.place(job_id, attempt, token) == "uncertain"  # as if the worker died mid-create
    assert dialer.reconcile_stuck_placements() == 0  # inside the placing timeout: not looked up yet
    beats(dialer, {DEAD: dialer.settings.dialer_worker_liveness_s + 1})

    assert dialer.reclaim_from_dead_workers() == 1
    assert dialer.reconcile_stuck_placements() == 1
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"], job["call_sid"]) == ("ringing", 1, calls_stand_in.calls[0]["sid"])
    assert len(calls_stand_in.creates) == 1


def test_a_placing_job_already_looked_up_keeps_its_second_look_up_a_placing_timeout_later(
        api: TestClient, stand_in_dialer: DialerService, calls_stand_in: CallsStandIn) -> None:
    dialer = stand_in_dialer
    calls_stand_in.create_answers.append(CreateAnswer(status=504, made_after_s=None))  # no call, no answer
    job_id, attempt, token = new_placement(api, dialer, "+14155550807")
    dialer.liveness.hold(job_id, token, DEAD)
    assert dialer.place(job_id, attempt, token) == "uncertain"
    age(dialer, job_id)
    assert dialer.reconcile_stuck_placements() == 0  # Twilio lists none: looked up once more later
    assert dialer.store.get(job_id)["lookup_missed"] == "1"

    beats(dialer, {DEAD: dialer.settings.dialer_worker_liveness_s + 1})  # its worker is found dead only now
    assert dialer.reclaim_from_dead_workers() == 0
    assert dialer.reconcile_stuck_placements() == 0  # a create Twilio finishes late still has time to show
    job = dialer.store.get(job_id)
    assert (job["state"], job["attempt"]) == ("placing", 1)
    assert len(calls_stand_in.creates) == 1
