"""Review of submitted records (审核, DESIGN §6; issue 12): off by default; a school admin (or a head
teacher, when the school allows it) accepts or sends back with a reason; a returned record counts as
not submitted until its teacher corrects and resubmits it; every step shows in its history."""

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from ledgers.models import WHOLE_CAMPAIGN, Level, UnitStatistics
from ledgers.statistics import statistics_compute
from oversight.models import ReviewSetting, ReviewStep
from oversight.services import review_setting_set, reviewable_visits, visit_review
from schools.models import AuditEvent, Phase
from tests import factories
from tests.test_statistics import NOW, assert_every_row_matches, build_county, expected_rows
from tests.test_visits import form_data
from visits.models import Method, Notification, Revision, Visit


@pytest.fixture
def phase(world):
    return factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)


def submitted_visit(world, *, teacher=None, student=None, **fields) -> Visit:
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=teacher or world.teacher,
        visited_at=fields.pop("visited_at", timezone.now() - datetime.timedelta(hours=3)),
        method=fields.pop("method", Method.PHONE),
        status=Visit.Status.SUBMITTED,
        submitted_at=timezone.now() - datetime.timedelta(hours=1),
        situation=fields.pop("situation", "电话沟通，孩子在家表现良好。"),
        contents=["learning"],
        integrity_declared=True,
        **fields,
    )
    visit.students.set([student or world.student])
    return visit


def test_a_school_that_does_not_review_keeps_todays_behaviour(world, login):
    visit = submitted_visit(world)
    admin = login(world.school_admin)

    page = admin.get(reverse("visit_detail", args=[visit.public_id])).content.decode()
    response = admin.post(reverse("review_decide", args=[visit.public_id]), {"action": "returned", "reason": "x"})

    assert "审核通过" not in page
    assert response.status_code == 404
    visit.refresh_from_db()
    assert visit.status == Visit.Status.SUBMITTED
    assert "本校未开启审核" in admin.get(reverse("review_queue")).content.decode()


def test_the_admin_returns_a_record_and_the_teacher_corrects_and_resubmits_it(world, login, phase):
    teacher = login(world.teacher)
    teacher.post(reverse("visit_create"), form_data(world))
    visit = Visit.objects.get()
    admin = login(world.school_admin)
    admin.post(reverse("review_settings"), {"mode": ReviewSetting.Mode.ADMIN})
    assert visit in admin.get(reverse("review_queue")).context["page"].object_list

    no_reason = admin.post(reverse("review_decide", args=[visit.public_id]), {"action": "returned", "reason": " "})
    assert no_reason.status_code == 302
    visit.refresh_from_db()
    assert visit.status == Visit.Status.SUBMITTED, "a return without a reason changes nothing"

    admin.post(reverse("review_decide", args=[visit.public_id]), {"action": "returned", "reason": "情况记录太简单"})
    visit.refresh_from_db()
    assert visit.status == Visit.Status.RETURNED
    assert Notification.objects.get(user=world.teacher).title == "家访记录被退回"
    home = teacher.get("/").content.decode()
    assert 'data-testid="returned-visits"' in home and "情况记录太简单" in home
    assert home.index("returned-visits") < home.index("student-row")

    edit = teacher.get(reverse("visit_edit", args=[visit.public_id])).content.decode()
    assert "重新提交" in edit
    teacher.post(
        reverse("visit_edit", args=[visit.public_id]),
        form_data(world, situation="孩子在家按时完成作业，家长关心学习；约定每周沟通。", version=str(visit.version)),
    )
    visit.refresh_from_db()
    assert visit.status == Visit.Status.SUBMITTED
    revision = Revision.objects.get(visit=visit)
    assert revision.changes["状态"] == ["已退回", "已提交"] and "情况记录" in revision.changes
    assert 'data-testid="returned-visits"' not in teacher.get("/").content.decode()

    admin.post(reverse("review_decide", args=[visit.public_id]), {"action": "accepted"})
    page = admin.get(reverse("visit_detail", args=[visit.public_id])).content.decode()
    assert [s.action for s in ReviewStep.objects.filter(visit=visit)] == ["returned", "accepted"]
    assert "已审核" in page and "情况记录太简单" in page
    assert not reviewable_visits(world.school_admin).exists()
    assert AuditEvent.objects.filter(object_id=str(visit.public_id), detail__review="returned").exists()


def test_head_teachers_review_their_class_only_when_the_school_allows_it(world, login):
    visit = submitted_visit(world)  # the teacher's visit to a student of the head teacher's class
    plain = submitted_visit(world, student=world.plain_student)
    review_setting_set(school=world.school, mode=ReviewSetting.Mode.ADMIN, acting_user=world.school_admin)
    head = login(world.head_teacher)
    assert head.get(reverse("review_queue")).status_code == 404

    review_setting_set(school=world.school, mode=ReviewSetting.Mode.HEAD_TEACHER, acting_user=world.school_admin)
    assert list(head.get(reverse("review_queue")).context["page"].object_list) == [visit]
    assert head.post(reverse("review_decide", args=[plain.public_id]), {"action": "accepted"}).status_code == 404
    with pytest.raises(ValidationError):
        visit_review(visit=visit, action="accepted", acting_user=world.teacher)  # nobody reviews their own
    head.post(reverse("review_decide", args=[visit.public_id]), {"action": "accepted"})
    assert ReviewStep.objects.get(visit=visit).reviewer == world.head_teacher


def test_only_the_schools_own_admin_sets_its_review(world):
    with pytest.raises(ValidationError):
        review_setting_set(school=world.school, mode=ReviewSetting.Mode.ADMIN, acting_user=world.other_admin)
    assert not ReviewSetting.objects.exists()


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_returned_record_counts_as_not_submitted_in_the_statistics():
    """The engine counts status = submitted: a returned record drops out of every figure (checked
    against the independent count of tests/test_statistics.py); resubmitting makes it submitted again
    (test above)."""
    county = build_county(7)
    campaign = county["campaign"]
    statistics_compute(campaign=campaign)
    before = UnitStatistics.objects.get(level=Level.COUNTY, period=WHOLE_CAMPAIGN, unit_id=0).visits
    returned = list(Visit.objects.filter(status=Visit.Status.SUBMITTED, phase__isnull=False).order_by("pk")[::3])
    assert returned
    for visit in returned:
        ReviewSetting.objects.update_or_create(school=visit.school, defaults={"mode": ReviewSetting.Mode.ADMIN})
        admin = visit.school.staff.filter(role="school_admin").first()
        visit_review(visit=visit, action="returned", reason="请补充情况记录", acting_user=admin)

    statistics_compute(campaign=campaign)

    assert_every_row_matches(expected_rows(campaign, county["phases"]))
    county_row = UnitStatistics.objects.get(level=Level.COUNTY, period=WHOLE_CAMPAIGN, unit_id=0)
    assert county_row.visits == before - len(returned)
