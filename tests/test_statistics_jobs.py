"""The statistics jobs: a change queues its school's refresh after the commit, refreshes within the
window are coalesced, a lost request is found by the sweep, and a full run killed midway is
finished by the next one without counting anything twice."""

import datetime
import threading

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from ledgers import statistics
from ledgers.models import WHOLE_CAMPAIGN, Level, StatisticsRun, UnitStatistics
from ledgers.statistics import statistics_recompute_all, statistics_refresh_stale
from ledgers.tasks import statistics_refresh_school, statistics_refresh_stale_sweep
from schools.models import School
from schools.services import statistics_refresh_request
from tests.conftest import require_postgresql
from tests.test_statistics import NOW, assert_every_row_matches, build_county, expected_rows

pytestmark = pytest.mark.django_db


def school_row(school: School) -> UnitStatistics:
    return UnitStatistics.objects.get(level=Level.SCHOOL, period=WHOLE_CAMPAIGN, unit_id=school.pk)


@time_machine.travel(NOW, tick=False)
def test_refreshes_within_the_window_are_coalesced_into_one_run(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.STATISTICS_REFRESH_DELAY = datetime.timedelta(seconds=30)
    county = build_county(51, schools=2)
    statistics.statistics_compute(campaign=county["campaign"])  # last night's figures
    school = School.objects.order_by("pk").first()
    runs = []
    original = statistics.statistics_compute

    def counting(**kwargs):
        runs.append(kwargs["school_ids"])
        return original(**kwargs)

    monkeypatch.setattr(statistics, "statistics_compute", counting)
    for _ in range(3):  # three visits submitted within a few seconds
        with django_capture_on_commit_callbacks(execute=False):
            statistics_refresh_request(school_id=school.pk)
    # The first request's queued refresh comes due while newer requests wait: it leaves it to them.
    assert statistics_refresh_school(school.pk) == []
    with time_machine.travel(NOW + datetime.timedelta(seconds=31), tick=False):
        assert statistics_refresh_school(school.pk) == [school.pk]
        assert statistics_refresh_school(school.pk) == []  # the others find nothing left to do

    assert len(runs) == 1
    assert School.objects.get(pk=school.pk).statistics_stale_since is None
    assert school_row(school).students_total == school.students.filter(status="active").count()


@time_machine.travel(NOW, tick=False)
def test_with_a_broker_changes_publish_nothing_and_the_sweep_after_the_window_refreshes_once(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Issue 15: no message per change waits in a worker for the window; beat's sweep coalesces."""
    from homevisit.celery import app

    settings.STATISTICS_REFRESH_DELAY = datetime.timedelta(seconds=30)
    county = build_county(56, schools=1)
    statistics.statistics_compute(campaign=county["campaign"])  # last night's figures
    school = School.objects.get()
    runs, published = [], []
    original = statistics.statistics_compute
    monkeypatch.setattr(statistics, "statistics_compute", lambda **kwargs: runs.append(1) or original(**kwargs))
    monkeypatch.setattr(statistics_refresh_school, "apply_async", lambda *args, **kwargs: published.append(args))
    app.conf.task_always_eager = False  # as with a broker (the conftest fixture puts it back)

    for _ in range(3):  # three visits submitted within a few seconds
        with django_capture_on_commit_callbacks(execute=True):
            statistics_refresh_request(school_id=school.pk)
    assert published == []
    assert statistics_refresh_stale_sweep() == []  # within the window: left for a later sweep
    with time_machine.travel(NOW + datetime.timedelta(seconds=31), tick=False):
        assert statistics_refresh_stale_sweep() == [school.pk]
        assert statistics_refresh_stale_sweep() == []

    assert len(runs) == 1
    assert School.objects.get(pk=school.pk).statistics_stale_since is None


@time_machine.travel(NOW, tick=False)
def test_a_request_made_during_a_refresh_is_not_lost(monkeypatch):
    build_county(52, schools=1)
    school = School.objects.get()
    statistics_refresh_request(school_id=school.pk)
    original = statistics.statistics_compute

    def with_a_visit_meanwhile(**kwargs):
        original(**kwargs)
        with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
            statistics_refresh_request(school_id=school.pk)  # committed while the refresh computed

    monkeypatch.setattr(statistics, "statistics_compute", with_a_visit_meanwhile)
    statistics_refresh_stale(school_ids=[school.pk])

    assert School.objects.get(pk=school.pk).statistics_stale_since is not None  # still to do


@time_machine.travel(NOW, tick=False)
def test_the_sweep_refreshes_a_school_whose_queued_refresh_was_lost(settings):
    settings.STATISTICS_REFRESH_DELAY = datetime.timedelta(seconds=30)
    build_county(53, schools=2)
    lost, waiting = School.objects.order_by("pk")
    School.objects.filter(pk=lost.pk).update(statistics_stale_since=NOW - datetime.timedelta(minutes=3))
    School.objects.filter(pk=waiting.pk).update(statistics_stale_since=NOW - datetime.timedelta(seconds=5))

    assert statistics_refresh_stale_sweep() == [lost.pk, waiting.pk]  # never computed: none is fresh enough

    School.objects.filter(pk=waiting.pk).update(statistics_stale_since=NOW - datetime.timedelta(seconds=5))
    assert statistics_refresh_stale_sweep() == []  # computed a moment ago; its own refresh is coming


@time_machine.travel(NOW, tick=False)
def test_a_broker_that_refuses_the_refresh_loses_nothing(monkeypatch, django_capture_on_commit_callbacks):
    build_county(54, schools=1)
    school = School.objects.get()

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(statistics_refresh_school, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        statistics_refresh_request(school_id=school.pk)  # the change commits; no error reaches the user

    assert School.objects.get(pk=school.pk).statistics_stale_since is not None
    assert statistics_refresh_stale_sweep() == [school.pk]


@time_machine.travel(NOW, tick=False)
def test_a_full_run_stopped_midway_is_resumed_at_once_from_its_next_step_without_double_counting():
    county = build_county(55, schools=4)

    class Killed(Exception):
        pass

    def die_after_two(run):
        if run.steps_done == 2:
            raise Killed

    with pytest.raises(Killed):
        statistics_recompute_all(on_step=die_after_two)
    run = StatisticsRun.objects.get()
    assert run.finished_at is None and run.steps_done == 2  # classes and schools stored
    assert UnitStatistics.objects.filter(level=Level.SCHOOL, period=WHOLE_CAMPAIGN).count() == 4
    assert not UnitStatistics.objects.filter(level=Level.COUNTY).exists()
    steps = []

    finished = statistics_recompute_all(on_step=lambda r: steps.append(r.steps_done))  # at once: no lease to wait

    assert finished.pk == run.pk and finished.finished_at is not None and finished.schools_done == 4
    assert steps == list(range(3, len(statistics.FIGURE_SETS) + 1))  # only the steps not done
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))

    # Run again: a new run, the same figures.
    with time_machine.travel(NOW + datetime.timedelta(minutes=30), tick=False):
        assert statistics_recompute_all().pk != run.pk
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_on_sqlite_a_run_whose_holder_vanished_is_resumed_once_its_one_minute_lease_is_over(settings):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's claim is a lock that dies with its connection (tested with SIGKILL below)")
    county = build_county(59, schools=2)
    assert datetime.timedelta(minutes=1) >= settings.STATISTICS_RUN_LEASE
    StatisticsRun.objects.create(campaign=county["campaign"], started_at=NOW, heartbeat_at=NOW)

    assert statistics_recompute_all() is None  # its holder may still be at work
    with time_machine.travel(NOW + settings.STATISTICS_RUN_LEASE + datetime.timedelta(seconds=1), tick=False):
        assert statistics_recompute_all().finished_at is not None
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_the_command_computes_every_unit_and_says_how_long_it_took(capsys):
    county = build_county(56, schools=3)
    call_command("compute_statistics")
    out = capsys.readouterr().out
    assert "3 所学校" in out and "秒" in out
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))
    call_command("compute_statistics", "--school", School.objects.first().code)
    assert "1 所学校" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=True)
def test_two_full_runs_started_at_once_compute_once(monkeypatch):
    require_postgresql("two workers at once need PostgreSQL's row locks")
    county = build_county(57, schools=3)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            results.append(statistics_recompute_all())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(r is None for r in results) == [False, True]  # one ran, the other stood aside
    assert StatisticsRun.objects.count() == 1
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@time_machine.travel(NOW, tick=False)
def test_the_nightly_task_comes_back_when_another_run_holds_the_claim_and_resumes_a_dead_ones():
    from celery.exceptions import Retry

    from ledgers.tasks import statistics_recompute_nightly

    county = build_county(58, schools=2)
    StatisticsRun.objects.create(campaign=county["campaign"], started_at=NOW, heartbeat_at=NOW)  # its holder died

    if connection.vendor == "sqlite":  # the lease: the holder may be alive for all SQLite knows
        with pytest.raises(Retry):
            statistics_recompute_nightly.apply(throw=True)
        with time_machine.travel(NOW + datetime.timedelta(minutes=2), tick=False):
            statistics_recompute_nightly.apply(throw=True)
    else:  # no process holds its lock: resumed at once
        statistics_recompute_nightly.apply(throw=True)
    assert StatisticsRun.objects.get().finished_at is not None
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


# A full recompute in a process of its own, on the test's database and clock, that pauses for a
# long while after its second stored step: the test SIGKILLs it there, as an out-of-memory kill or
# a redeploy would. Production code has no test hook: the pause is the ``on_step`` argument.
_RECOMPUTE = """
import json, os, time
import time_machine
params = json.loads(os.environ["RECOMPUTE_PARAMS"])
time_machine.travel(time.time() + params["clock_offset"], tick=True).start()
import django
django.setup()
from ledgers.statistics import statistics_recompute_all
statistics_recompute_all(on_step=lambda run: time.sleep(600 if run.steps_done == 2 else 0))
"""


@pytest.mark.django_db(transaction=True)
def test_a_full_recompute_killed_with_sigkill_is_resumed_at_once_by_the_next_run_and_exact(tmp_path):
    require_postgresql("the claim is a PostgreSQL advisory lock held by another process")
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from django.conf import settings as django_settings

    from tests.test_faults import _test_database_url

    clock_offset = NOW.timestamp() - time.time()  # read before this process travels
    traveller = time_machine.travel(NOW, tick=True)
    traveller.start()
    try:
        county = build_county(73, schools=4)
        log = tmp_path / "recompute.log"
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "DJANGO_SETTINGS_MODULE": "homevisit.settings",
            "PYTHONPATH": str(django_settings.BASE_DIR),
            "RECOMPUTE_PARAMS": json.dumps({"clock_offset": clock_offset}),
        }
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [sys.executable, "-c", _RECOMPUTE], cwd=django_settings.BASE_DIR, env=env, stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while not StatisticsRun.objects.filter(steps_done__gte=2).exists():
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "the recompute did not store two steps in 60 s"
                time.sleep(0.05)
            assert statistics_recompute_all() is None  # alive: its claim holds
            process.send_signal(signal.SIGKILL)
            process.wait()
        killed = time.monotonic()
        run = StatisticsRun.objects.get()
        assert run.finished_at is None and run.steps_done == 2

        steps = []
        successor = None
        while successor is None and time.monotonic() - killed < 5:  # the server ends the dead session
            successor = statistics_recompute_all(on_step=lambda r: steps.append((r.steps_done, time.monotonic())))
        assert successor is not None, "the dead run's claim outlived it"
        started_after = steps[0][1] - killed
    finally:
        traveller.stop()

    assert successor.pk == run.pk and successor.finished_at is not None  # resumed, not restarted
    assert [done for done, _ in steps] == list(range(3, len(statistics.FIGURE_SETS) + 1))
    assert started_after < 5, f"the next run's first step came {started_after:.1f} s after the kill"
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))
