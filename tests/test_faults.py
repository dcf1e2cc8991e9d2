"""Faults under the system: Redis down or hung, a Celery worker killed in the middle of the nightly
recompute, the PostgreSQL connection lost in the middle of a request. In each, nothing a user
saved is lost and nothing is half-written.

- Broker down: the Celery app publishes to a URL where nothing listens (or to a socket that never
  answers). Publishing gives up within seconds (settings, ``# --- Faults ---``), the teacher's
  submission is stored and its school marked stale; when the broker is back the periodic sweep
  brings the figures up to date.
- Worker killed: a real worker in a subprocess, against the real Redis and the test database,
  is SIGKILLed after the nightly run has stored some chunks; with ``acks_late`` the message is
  handed out again to the next worker, which resumes the run from the progress row.
- Database connection lost: the request's PostgreSQL backend is terminated after the visit row
  was inserted; the user gets the Chinese error page and the transaction is rolled back.

The worker and database tests need PostgreSQL and Redis; the embedded run skips them, and CI's
services run (HOMEVISIT_REQUIRE_SERVICES=1) fails if either is missing.
"""

import contextlib
import datetime
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import psycopg2
import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import visits.services
from homevisit.celery import BrokerCircuitOpen, publish_circuit
from ledgers import statistics
from ledgers.models import StatisticsRun
from ledgers.statistics import statistics_compute
from ledgers.tasks import statistics_recompute_nightly, statistics_refresh_stale_sweep
from schools.models import AuditEvent, Phase, Role, School, SchoolClass
from students.models import Student
from tests import factories
from tests.conftest import REQUIRE_SERVICES, require_postgresql
from tests.test_safety import _overdue
from tests.test_statistics import NOW, assert_every_row_matches, build_county, expected_rows
from tests.test_visits import form_data
from visits.models import Notification, SafetyReport, Suggestion, Visit, WebhookMessage
from visits.safety import safety_reports_mark_overdue

REFUSING_BROKER = "redis://127.0.0.1:1/0"  # port 1: nothing listens, every connection is refused
SUBMIT_BOUND_SECONDS = 5.0  # a refused connection fails at once: well under this


def _hung_broker_bound() -> float:
    """A broker that never answers costs each try of the publish its socket timeout (settings,
    ``# --- Faults ---``: two tries of two seconds), plus a second and a half for the request."""
    tries = settings.CELERY_TASK_PUBLISH_RETRY_POLICY["max_retries"] + 1
    return tries * settings.CELERY_BROKER_TRANSPORT_OPTIONS["socket_timeout"] + 1.5


@contextlib.contextmanager
def _silent_broker() -> Iterator[str]:
    """A broker that accepts the connection and never answers, like a Redis that hangs."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@contextlib.contextmanager
def _broker_at(monkeypatch, url: str) -> Iterator[None]:
    """Publish tasks to ``url`` instead of running them in-process, for the duration of the block.

    The app's broker connection pools are built on first use from the write URL; they are set
    aside so that the next publish connects to ``url``, and put back afterwards."""
    from homevisit.celery import app

    with monkeypatch.context() as patch:
        patch.setenv("CELERY_BROKER_WRITE_URL", url)
        patch.setattr(app, "_pool", None)
        patch.setattr(app.amqp, "_producer_pool", None)
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = False
        try:
            yield
        finally:
            app.conf.task_always_eager = eager
            if app._pool is not None:
                app._pool.force_close_all()


def _teacher_and_student(school: School) -> tuple:
    """A head teacher of the school with an active student in their class."""
    for school_class in SchoolClass.objects.filter(school=school, head_teacher__isnull=False).order_by("pk"):
        head = school_class.head_teacher
        student = Student.objects.filter(school_class=school_class, status=Student.Status.ACTIVE).first()
        if head.is_active and head.role == Role.TEACHER and head.school_id == school.pk and student:
            return head, student
    raise AssertionError("the county has no head teacher with a student")


# --- Redis down ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", ["refusing", "silent"])
def test_with_the_broker_down_a_visit_is_submitted_at_once_and_the_sweep_catches_up(
    broker, monkeypatch, settings, caplog
):
    settings.STATISTICS_REFRESH_DELAY = datetime.timedelta(seconds=30)
    with time_machine.travel(NOW, tick=True):
        county = build_county(71, schools=2)
        statistics_compute(campaign=county["campaign"])  # last night's figures
        school = School.objects.order_by("pk").first()
        teacher, student = _teacher_and_student(school)
        client = Client()
        client.force_login(teacher)

        with contextlib.ExitStack() as stack:
            url = REFUSING_BROKER if broker == "refusing" else stack.enter_context(_silent_broker())
            stack.enter_context(_broker_at(monkeypatch, url))
            caplog.set_level(logging.WARNING, logger="homevisit.broker")
            started = time.monotonic()
            response = client.post(reverse("visit_create"), form_data(SimpleNamespace(student=student)), secure=True)
            elapsed = time.monotonic() - started

        visit = Visit.objects.get(lead_teacher=teacher, students=student, status=Visit.Status.SUBMITTED)
        assert response.status_code == 302
        assert response["Location"] == reverse("visit_detail", args=[visit.public_id])
        bound = SUBMIT_BOUND_SECONDS if broker == "refusing" else _hung_broker_bound()
        assert elapsed < bound, f"the submission waited {elapsed:.1f} s for the broker"
        assert visit.phase == county["phases"][Phase.Kind.REVISIT]
        assert School.objects.get(pk=school.pk).statistics_stale_since is not None
        # No message per submission (ledgers.receivers): the broker was not even tried.
        assert "broker publish" not in caplog.text and not publish_circuit.is_open()

        # The broker is back (here: tasks in-process again); beat's sweep runs a minute or two later.
        with time_machine.travel(NOW + datetime.timedelta(minutes=2), tick=True):
            assert statistics_refresh_stale_sweep.delay().get() == [school.pk]

    assert School.objects.get(pk=school.pk).statistics_stale_since is None
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_safety_alarm_and_check_in_still_notify_in_the_app(
    world, monkeypatch, settings, caplog
):
    """The robot's copy of each message is queued after the commit; with the broker down the
    queueing fails (logged) but the message waits in the outbox for the sweep, and the in-app
    notification — the record of the alarm — is kept."""
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/cgi-bin/webhook/send?key=test-key"
    report = _overdue(world)
    client = Client()
    client.force_login(world.teacher)

    with _broker_at(monkeypatch, REFUSING_BROKER):
        assert safety_reports_mark_overdue() == 1  # beat's sweep, in a worker
        started = time.monotonic()
        response = client.post(reverse("safety_check_in", args=[report.public_id]), secure=True)
        elapsed = time.monotonic() - started

    assert response.status_code == 302 and elapsed < SUBMIT_BOUND_SECONDS
    report.refresh_from_db()
    assert report.status == SafetyReport.Status.RETURNED and report.overdue_notified_at is not None
    titles = set(Notification.objects.filter(user=world.school_admin).values_list("title", flat=True))
    assert titles == {"城关第一小学：张老师家访超时未报平安", "城关第一小学：张老师已平安返回"}
    assert caplog.text.count("Error calling") == 2  # each failed queueing is in the log
    assert WebhookMessage.objects.filter(sent_at__isnull=True).count() == 2  # and nothing is lost


@pytest.mark.django_db(transaction=True)
def test_after_a_publish_to_a_hung_broker_fails_the_next_ones_fail_at_once_until_the_circuit_closes(
    world, monkeypatch, settings, caplog
):
    """The first publish to a broker that never answers costs its bounded timeout and opens the
    circuit; the publishes after it, in any thread of the process, raise BrokerCircuitOpen without
    touching the socket; once the circuit has been open for PUBLISH_CIRCUIT_OPEN_SECONDS the next
    publish tries the broker again."""
    from visits.tasks import notify_webhook_send

    caplog.set_level(logging.WARNING, logger="homevisit.broker")
    with _silent_broker() as url, _broker_at(monkeypatch, url):
        with pytest.raises(Exception) as first:  # noqa: PT011 - whatever the transport raises
            notify_webhook_send.delay(1)
        assert not isinstance(first.value, BrokerCircuitOpen) and publish_circuit.is_open()
        assert "broker publish of visits.tasks.notify_webhook_send failed; no publish tried for 30 s" in caplog.text

        skipped = []
        for _ in range(20):
            with pytest.raises(BrokerCircuitOpen):
                notify_webhook_send.delay(1)
            skipped.append(True)
        other_thread: list = []
        thread = threading.Thread(target=lambda: other_thread.append(_publish_error(notify_webhook_send)))
        thread.start()
        thread.join()
        assert len(skipped) == 20 and isinstance(other_thread[0], BrokerCircuitOpen)

        publish_circuit.open_until = time.monotonic() - 1  # PUBLISH_CIRCUIT_OPEN_SECONDS have passed
        with pytest.raises(Exception) as again:  # noqa: PT011
            notify_webhook_send.delay(1)
        assert not isinstance(again.value, BrokerCircuitOpen)  # tried the broker again


def _publish_error(task) -> Exception | None:
    try:
        task.delay(1)
    except Exception as exc:  # noqa: BLE001 - the test looks at which
        return exc
    return None


# --- a worker killed in the middle of the nightly recompute -------------------------------------

# The worker runs in a subprocess so that it can be SIGKILLed. This wrapper around `celery worker`
# shares the test's clock (the county is built for NOW) and pauses after each stored step (through
# statistics_recompute_all's ``on_step``), so that the kill lands
# in the middle of the run; and it shortens the lease and the broker's visibility timeout, so the
# next worker gets the message back within seconds rather than an hour. Production code has no
# test hook.
_WORKER = """
import datetime, functools, json, os, time
import time_machine
params = json.loads(os.environ["FAULTS_WORKER"])
time_machine.travel(time.time() + params["clock_offset"], tick=True).start()
import django
django.setup()
from django.conf import settings
from homevisit.celery import app
from ledgers import statistics, tasks
settings.STATISTICS_RUN_LEASE = datetime.timedelta(seconds=params["lease"])
tasks.statistics_recompute_all = functools.partial(
    statistics.statistics_recompute_all, on_step=lambda run: time.sleep(params["pause"])
)
app.conf.broker_transport_options = {**app.conf.broker_transport_options, **params["transport_options"]}
app.worker_main([
    "worker", "--pool", "solo", "--queues", params["queue"], "--hostname", params["hostname"],
    "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO",
])
"""
LEASE_SECONDS = 2
PAUSE_SECONDS = 0.4
SCHOOLS = 6


def _require_broker() -> None:
    if settings.CELERY_BROKER_URL:
        return
    if REQUIRE_SERVICES:
        pytest.fail("HOMEVISIT_REQUIRE_SERVICES=1 but CELERY_BROKER_URL is not set")
    pytest.skip("no Celery broker configured: the embedded run executes tasks in-process")


def _test_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test_* database)."""
    params = connection.settings_dict
    credentials = quote(params["USER"] or "", safe="")
    if params["PASSWORD"]:
        credentials += ":" + quote(params["PASSWORD"], safe="")
    host = params["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{params['PORT'] or 5432}/{quote(params['NAME'], safe='')}"


class _Worker:
    """`celery worker` in a subprocess, its output in a log file."""

    def __init__(self, *, name: str, log: Path, params: dict):
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "faults-test-secret-key-that-is-long-enough-0123",
            "DJANGO_SETTINGS_MODULE": "homevisit.settings",
            "PYTHONPATH": str(settings.BASE_DIR),
            "FAULTS_WORKER": json.dumps({**params, "hostname": f"{name}@faults"}),
        }
        env.pop("CELERY_BROKER_WRITE_URL", None)
        self.log = log
        self._output = log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", _WORKER],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )

    def wait_until_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if b" ready." in self.log.read_bytes():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"the worker did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output.close()


def _task_ids(log: Path, event: str) -> set[str]:
    return set(re.findall(rf"statistics_recompute_nightly\[([0-9a-f-]+)\] {event}", log.read_text(errors="replace")))


def _wait_for(condition, *, seconds: float, worker: _Worker, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.output()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{worker.output()}")


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_nightly_recompute_is_replaced_and_the_run_finished(tmp_path):
    require_postgresql("a worker in another process reads the test's committed rows from PostgreSQL")
    _require_broker()
    import redis

    from homevisit.celery import app

    clock_offset = NOW.timestamp() - time.time()
    traveller = time_machine.travel(NOW, tick=True)
    traveller.start()
    prefix = f"faults-{uuid.uuid4().hex[:12]}:"
    queue = "faults-nightly"
    transport_options = {
        # Keys of its own: no other test's worker shares (or restores) these messages.
        "global_keyprefix": prefix,
        "visibility_timeout": LEASE_SECONDS,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    params = {
        "clock_offset": clock_offset,
        "lease": LEASE_SECONDS,
        "pause": PAUSE_SECONDS,
        "queue": queue,
        "transport_options": transport_options,
    }
    workers: list[_Worker] = []
    started = time.monotonic()
    try:
        county = build_county(72, schools=SCHOOLS)
        first = _Worker(name="first", log=tmp_path / "first.log", params=params)
        workers.append(first)
        first.wait_until_ready()
        app.conf.task_always_eager = False  # the conftest fixture puts it back
        with app.connection_for_write(settings.CELERY_BROKER_URL, transport_options=transport_options) as conn:
            statistics_recompute_nightly.apply_async(queue=queue, connection=conn)

        _wait_for(
            lambda: StatisticsRun.objects.filter(steps_done__gte=2).exists(),
            seconds=30,
            worker=first,
            what="two stored steps",
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        run = StatisticsRun.objects.get()
        assert run.finished_at is None and 2 <= run.steps_done < len(statistics.FIGURE_SETS)
        killed_at = run.steps_done

        # The next worker comes up once the dead one's lease has run out (a real restart takes longer).
        while timezone.now() < run.heartbeat_at + datetime.timedelta(seconds=LEASE_SECONDS + 0.3):
            time.sleep(0.1)
        second = _Worker(name="second", log=tmp_path / "second.log", params=params)
        workers.append(second)
        _wait_for(
            lambda: StatisticsRun.objects.filter(finished_at__isnull=False).exists(),
            seconds=40,
            worker=second,
            what="the resumed run to finish",
        )
    finally:
        for worker in workers:
            worker.stop()
        traveller.stop()
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()

    # One message, sent once: the task the first worker took is the task the second one finished.
    received = [_task_ids(worker.log, "received") for worker in workers]
    assert received[0] == received[1] == _task_ids(second.log, "succeeded") and len(received[0]) == 1
    run = StatisticsRun.objects.get()  # the same run, resumed, not a new one
    assert run.steps_done == len(statistics.FIGURE_SETS), f"killed after step {killed_at}; resumed, not restarted"
    assert run.schools_done == SCHOOLS
    assert_every_row_matches(expected_rows(county["campaign"], county["phases"]))
    assert time.monotonic() - started < 60


# --- the database connection lost in the middle of a request -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_lost_mid_submission_shows_the_chinese_error_page_and_keeps_nothing(world, monkeypatch):
    require_postgresql("the fault is PostgreSQL terminating the request's connection")
    factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)
    client = Client(raise_request_exception=False)
    client.force_login(world.teacher)
    seen = {}
    audit_event_record = visits.services.audit_event_record

    def connection_lost_after_the_visit_row(**kwargs):
        """Runs inside visit_submit's transaction, after the visit and its students were written."""
        seen["visits_before"] = Visit.objects.count()
        params = connection.settings_dict
        with contextlib.closing(
            psycopg2.connect(
                dbname=params["NAME"],
                user=params["USER"],
                password=params["PASSWORD"],
                host=params["HOST"],
                port=params["PORT"],
            )
        ) as other:
            other.autocommit = True
            with other.cursor() as cursor:
                # Waits (up to 5 s) until the backend is gone.
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [connection.connection.get_backend_pid()])
                seen["terminated"] = cursor.fetchone()[0]
        return audit_event_record(**kwargs)

    monkeypatch.setattr(visits.services, "audit_event_record", connection_lost_after_the_visit_row)
    audit_rows = AuditEvent.objects.count()

    response = client.post(reverse("visit_create"), form_data(world), secure=True)

    assert seen == {"visits_before": 1, "terminated": True}
    assert response.status_code == 500
    page = response.content.decode()
    assert "系统暂时出错" in page and "刚才的操作没有完成" in page and 'lang="zh-CN"' in page
    connection.close()  # the test's own handle on the terminated backend; the next query reconnects
    assert Visit.objects.count() == 0
    assert Suggestion.objects.count() == 0
    assert Visit.students.through.objects.count() == 0
    assert AuditEvent.objects.count() == audit_rows
    assert School.objects.get(pk=world.school.pk).statistics_stale_since is None


@pytest.mark.django_db
def test_the_error_page_is_chinese_and_needs_neither_the_database_nor_other_files(django_assert_num_queries):
    source = (Path(settings.BASE_DIR) / "templates" / "500.html").read_text()
    with django_assert_num_queries(0):
        page = render_to_string("500.html")
    assert "{%" not in source and "{{" not in source  # nothing that could fail while rendering it
    assert "<link" not in page and "<script" not in page and "<img" not in page
    assert 'lang="zh-CN"' in page and "系统暂时出错" in page and "返回首页" in page
