"""The health endpoint (issue 15, issue 9): /health/ for the load balancer, /health/detail/ for the
operator. Who may see which: tests/test_scope_matrix.py."""

import datetime
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from homevisit.celery import _stamp_beat
from monitoring.models import Heartbeat
from monitoring.services import heartbeat_stamp
from monitoring.tasks import HEARTBEAT_TASK, health_heartbeat
from schools.models import School

pytestmark = pytest.mark.django_db

REFUSING_BROKER = "redis://127.0.0.1:1/0"


def _detail(client) -> tuple[int, dict]:
    response = client.get(reverse("health_detail"), {"format": "json"}, secure=True)
    return response.status_code, json.loads(response.content)


def _status_of(results: dict, prefix: str) -> str:
    (status,) = [value for key, value in results.items() if key.startswith(prefix)]
    return status


def test_the_load_balancer_gets_200_without_signing_in_and_over_plain_http(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(reverse("health"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Database(alias='default'): OK\n"
    assert "no-cache" in response["Cache-Control"]


def test_the_operator_sees_every_check_and_a_silent_worker_fails_the_page(world, login, settings):
    settings.CELERY_BROKER_URL = settings.CELERY_BROKER_URL or REFUSING_BROKER
    client = login(world.bureau_admin)
    heartbeat_stamp(name=Heartbeat.Name.BEAT)
    heartbeat_stamp(name=Heartbeat.Name.WORKER, at=timezone.now() - datetime.timedelta(seconds=61))

    status, results = _detail(client)

    assert status == 500
    assert _status_of(results, "Database") == "OK"
    assert _status_of(results, "HeartbeatCheck(name='beat')") == "OK"
    assert _status_of(results, "HeartbeatCheck(name='worker')").startswith("Unavailable: worker: silent for 6")
    assert _status_of(results, "FiguresAge") == "OK"
    assert any(key.startswith("Broker") for key in results)

    health_heartbeat.delay()  # the worker answers beat's next heartbeat
    status, results = _detail(client)
    assert _status_of(results, "HeartbeatCheck(name='worker')") == "OK"


def test_a_worker_or_beat_that_never_beat_is_unavailable(world, login, settings):
    settings.CELERY_BROKER_URL = settings.CELERY_BROKER_URL or REFUSING_BROKER
    status, results = _detail(login(world.bureau_admin))

    assert status == 500
    assert _status_of(results, "HeartbeatCheck(name='worker')") == "Unavailable: worker: no heartbeat yet"
    assert _status_of(results, "HeartbeatCheck(name='beat')") == "Unavailable: beat: no heartbeat yet"


@pytest.mark.django_db(transaction=True)  # beat replaces a dropped connection, which ends a test's transaction
def test_beat_stamps_its_heartbeat_when_it_sends_the_heartbeat_task_only(world):
    _stamp_beat(sender="ledgers.tasks.statistics_refresh_stale_sweep")
    assert not Heartbeat.objects.exists()

    _stamp_beat(sender=HEARTBEAT_TASK)
    assert Heartbeat.objects.get().name == Heartbeat.Name.BEAT


def test_figures_behind_by_more_than_two_minutes_are_reported_with_counts_only(world, login, settings):
    settings.CELERY_BROKER_URL = None  # the embedded default: no broker, worker or beat checks
    School.objects.filter(pk=world.school.pk).update(
        statistics_stale_since=timezone.now() - datetime.timedelta(minutes=3)
    )
    School.objects.filter(pk=world.other_school.pk).update(statistics_stale_since=timezone.now())

    response = login(world.bureau_admin).get(reverse("health_detail"), secure=True)

    page = response.content.decode()
    assert response.status_code == 500
    assert "Warning: 1 school(s) with figures older than their last change by more than 120 s; oldest 18" in page
    assert "Heartbeat" not in page  # no worker or beat without a broker
    for name in (world.school.name, world.other_school.name, world.teacher.real_name, world.student.name):
        assert name not in page


# --- the dashboards say when a school's figures are behind (issue 15) -------------------------------


@pytest.fixture
def dashboards(world):
    """The world's county computed (tests/test_dashboards.py), at that module's frozen time."""
    import time_machine

    from tests.test_dashboards import NOW as DASHBOARD_NOW
    from tests.test_dashboards import StatsBuilder, make_campaign

    with time_machine.travel(DASHBOARD_NOW, tick=False):
        build = StatsBuilder(make_campaign())
        build.county(students_required=4, students_visited=1)
        for school in (world.school, world.other_school):
            build.zone(school.zone, students_required=2)
            build.school(school, students_required=2)
        build.school_class(world.school_class, students_required=2)
        yield DASHBOARD_NOW


@pytest.mark.parametrize(
    ("role", "url", "note"),
    [
        (
            "bureau_admin",
            lambda w: reverse("statistics_county"),
            "有 1 所学校的数据晚于最新的家访记录超过 2 分钟（最久约 3 分钟）",
        ),
        (
            "school_admin",
            lambda w: reverse("statistics_school", args=[w.school.pk]),
            "本校的数据晚于最新的家访记录超过 2 分钟",
        ),
    ],
)
def test_a_dashboard_says_when_a_schools_figures_are_more_than_two_minutes_behind(
    world, dashboards, login, role, url, note
):
    client = login(world.users()[role])
    School.objects.filter(pk=world.school.pk).update(statistics_stale_since=dashboards - datetime.timedelta(seconds=90))
    assert 'data-testid="figures-behind"' not in client.get(url(world)).content.decode()  # within the promise

    School.objects.filter(pk=world.school.pk).update(statistics_stale_since=dashboards - datetime.timedelta(minutes=3))
    page = client.get(url(world)).content.decode()

    assert note in page


def test_the_other_schools_dashboard_does_not_mention_a_late_school(world, dashboards, login):
    School.objects.filter(pk=world.school.pk).update(statistics_stale_since=dashboards - datetime.timedelta(minutes=3))

    page = login(world.other_admin).get(reverse("statistics_school", args=[world.other_school.pk])).content.decode()

    assert 'data-testid="figures-behind"' not in page
