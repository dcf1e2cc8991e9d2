"""The campaign changing under filed visits (DESIGN §1, §7): the visit form says when a date counts in
no period, and the Django admin moves phases and accounts through the services that keep the
statistics' inputs right (visits re-derived, old assignments ended)."""

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from schools.models import AuditEvent, Phase, SchoolClass, TeachingAssignment, User
from tests import factories
from tests.test_visits import form_data
from visits.models import Visit

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@time_machine.travel(NOW, tick=False)
def test_the_visit_form_says_which_dates_count_and_warns_when_a_visit_counts_in_no_period(world, login):
    factories.PhaseFactory(
        kind=Phase.Kind.FULL_ROUND, start=datetime.date(2026, 11, 10), end=datetime.date(2026, 11, 30)
    )
    client = login(world.teacher)
    page = client.get(reverse("visit_create")).content.decode()
    assert "本年度家访活动：2026年11月10日至2026年11月30日" in page and "不计入任何统计期间" in page

    response = client.post(reverse("visit_create"), form_data(world, visited_at="2026-11-02T10:00"), follow=True)

    assert Visit.objects.get().is_submitted  # allowed: the date is in the campaign's year
    assert "家访日期 2026-11-02 不在本年度家访活动期间（2026-11-10 至 2026-11-30）" in response.content.decode()
    inside = client.post(reverse("visit_create"), form_data(world, visited_at="2026-11-12T10:00"), follow=True)
    assert "不在本年度家访活动期间" not in inside.content.decode()


@time_machine.travel(NOW, tick=False)
def test_moving_a_phase_in_the_admin_moves_the_visits_already_filed(world, login):
    phase = factories.PhaseFactory(
        kind=Phase.Kind.FULL_ROUND, start=datetime.date(2026, 11, 10), end=datetime.date(2026, 11, 30)
    )
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=datetime.datetime(2026, 11, 5, 10, tzinfo=NOW.tzinfo),
        method="phone",
        status=Visit.Status.SUBMITTED,
    )
    campaign = phase.campaign
    data = {
        "year": campaign.year,
        "name": campaign.name,
        "school_year": "",
        "coverage_target": campaign.coverage_target,
        "phases-TOTAL_FORMS": "1",
        "phases-INITIAL_FORMS": "1",
        "phases-MIN_NUM_FORMS": "1",
        "phases-MAX_NUM_FORMS": "1000",
        "phases-0-id": phase.pk,
        "phases-0-campaign": campaign.pk,
        "phases-0-kind": phase.kind,
        "phases-0-start": "2026-11-01",
        "phases-0-end": "2026-11-30",
    }
    response = login(world.bureau_admin).post(reverse("admin:schools_campaign_change", args=[campaign.pk]), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    visit.refresh_from_db()
    assert visit.phase == phase
    assert world.school.__class__.objects.filter(statistics_stale_since__isnull=False).count() == 2


def test_moving_an_account_to_another_school_in_the_admin_ends_its_old_assignments(world, login):
    teacher = world.head_teacher
    factories.TeachingAssignmentFactory(teacher=teacher, school_class=world.plain_class)
    client = login(world.bureau_admin)
    url = reverse("admin:schools_user_change", args=[teacher.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data |= {
        "school": world.other_school.pk,
        "zone": "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "08:00:00",
    }
    data = {k: v for k, v in data.items() if v is not False and k not in ("groups", "user_permissions", "last_login")}

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:3000]
    teacher.refresh_from_db()
    assert teacher.school == world.other_school
    assert not SchoolClass.objects.filter(head_teacher=teacher).exists()
    assert not TeachingAssignment.objects.filter(teacher=teacher).exists()
    assert AuditEvent.objects.filter(object_type="schools.User", object_id=str(teacher.pk)).exists()
    assert User.objects.get(pk=world.teacher.pk).assignments.count() == 1  # others keep theirs
