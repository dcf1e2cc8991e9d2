"""The work ledger (工作台账, issue 11): every active student × phase with its status, 待办 first;
the per-class roll-up; the 台账-layout exports, one sheet per class; large exports as a Celery task
that re-checks the scope and leaves a file that expires."""

import datetime
import io

import openpyxl
import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from ledgers.jobs import ledger_exports_purge
from ledgers.models import LedgerExportJob
from ledgers.work import campaign_phases, class_rollup, ledger_rows, ledger_students
from schools.models import AuditEvent, Phase, Role
from students.models import Category, Student
from tests import factories
from visits.models import Method, Visit


@pytest.fixture
def phases(world):
    """A first round that began 20 days ago and ends in 10; a revisit round later in the year."""
    campaign = factories.CampaignFactory()
    today = timezone.localdate()
    first = factories.PhaseFactory(
        campaign=campaign,
        kind=Phase.Kind.FULL_ROUND,
        start=today - datetime.timedelta(days=20),
        end=today + datetime.timedelta(days=10),
    )
    factories.PhaseFactory(
        campaign=campaign,
        kind=Phase.Kind.REVISIT,
        start=today + datetime.timedelta(days=60),
        end=today + datetime.timedelta(days=90),
    )
    return first


def _visit(world, student, *, teacher=None, phase=None, method=Method.PHONE, days_ago=2, companions=()):
    when = timezone.now() - datetime.timedelta(days=days_ago)
    visit = Visit.objects.create(
        school=student.school,
        lead_teacher=teacher or world.teacher,
        visited_at=when,
        phase=phase,
        method=method,
        status=Visit.Status.SUBMITTED,
        submitted_at=when,
        situation="走访。",
        integrity_declared=True,
    )
    visit.students.set([student])
    visit.companions.set(companions)
    return visit


def test_the_class_ledger_lists_the_students_not_visited_in_the_first_round_first(world, phases, login):
    visited = world.student
    factories.StudentFactory(school_class=world.school_class, name="李未访")
    factories.StudentFactory(school_class=world.school_class, name="已离校", status=Student.Status.LEFT)
    _visit(world, visited, phase=phases)

    page = login(world.head_teacher).get(reverse("work_class", args=[world.school_class.pk])).content.decode()

    assert page.index("李未访") < page.index(visited.name)
    assert "已离校" not in page
    students = ledger_students(Student.objects.filter(school_class=world.school_class), campaign_phases())
    by_name = {row.student.name: row for row in ledger_rows(list(students))}
    assert by_name["李未访"].todo and by_name["李未访"].first.label == "未走访"
    assert not by_name[visited.name].todo and by_name[visited.name].first.visit.lead_teacher == world.teacher
    assert by_name[visited.name].revisit.label == "无需回访"


def test_filtering_by_status_answers_who_was_not_visited(world, phases, login):
    factories.StudentFactory(school_class=world.school_class, name="李未访")
    _visit(world, world.student, phase=phases)
    page = login(world.school_admin).get(
        reverse("work_school", args=[world.school.pk]), {"school_class": world.school_class.pk, "status": "todo"}
    )
    text = page.content.decode()
    assert "李未访" in text and world.student.name not in text.split("学生（待办在前）")[1]


def test_a_special_student_short_of_in_home_visits_is_todo_and_shows_the_count(world, phases):
    factories.StudentCategoryFactory(student=world.student, category=Category.LEFT_BEHIND)
    _visit(world, world.student, phase=phases, method=Method.IN_HOME)
    rows = ledger_rows(list(ledger_students(Student.objects.filter(pk=world.student.pk), campaign_phases())))
    assert rows[0].special and rows[0].in_home_label == "1/2" and rows[0].todo
    assert rows[0].group_label == "特殊学生" and rows[0].revisit.label == "未走访"
    _visit(world, world.student, phase=phases, method=Method.IN_HOME, days_ago=1)
    rows = ledger_rows(list(ledger_students(Student.objects.filter(pk=world.student.pk), campaign_phases())))
    # The revisit round has not begun: only the in-home rule counted, and it is met.
    assert rows[0].in_home_label == "2/2" and not rows[0].todo


def test_the_school_rollup_counts_per_class_with_its_teachers_participation(world, phases):
    factories.StudentFactory(school_class=world.school_class, name="李未访")
    _visit(world, world.student, teacher=world.teacher, phase=phases, companions=[world.head_teacher])
    _visit(world, world.plain_student, teacher=world.school_admin, phase=phases)
    rollup = {r.school_class.pk: r for r in class_rollup(world.school, campaign_phases())}
    mine = rollup[world.school_class.pk]
    assert (mine.students, mine.first_visited, mine.first_todo) == (2, 1, 1)
    assert {t.pk for t in mine.teachers} == {world.head_teacher.pk, world.teacher.pk}
    assert mine.teachers_participating == 2
    plain = rollup[world.plain_class.pk]
    assert (plain.students, plain.first_visited, plain.teachers_participating) == (1, 1, 0)


@pytest.mark.parametrize("role", ["teacher", "other_teacher"])
def test_a_teacher_who_is_not_the_head_teacher_gets_404(world, phases, login, role):
    response = login(world.users()[role]).get(reverse("work_class", args=[world.school_class.pk]))
    assert response.status_code == 404


def test_the_pages_take_the_same_queries_whatever_the_students(world, phases, login, django_assert_max_num_queries):
    client = login(world.school_admin)
    url = reverse("work_school", args=[world.school.pk])
    with django_assert_max_num_queries(22):
        assert client.get(url).status_code == 200
    for n in range(60):
        student = factories.StudentFactory(school_class=world.school_class, name=f"学生{n}")
        if n % 2:
            _visit(world, student, phase=phases)
    with django_assert_max_num_queries(22):
        assert client.get(url, {"status": "todo", "category": "revisit"}).status_code == 200
    with django_assert_max_num_queries(22):
        assert client.get(url, {"page": 2}).status_code == 200


def _workbook(response) -> openpyxl.Workbook:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return openpyxl.load_workbook(io.BytesIO(content))


def test_the_school_export_has_one_sheet_per_class_in_the_ledger_layout_and_is_audited(world, phases, login):
    _visit(world, world.student, phase=phases)
    response = login(world.school_admin).get(reverse("work_school_export", args=[world.school.pk]))
    workbook = _workbook(response)
    assert workbook.sheetnames == [world.school_class.name, world.plain_class.name]
    sheet = workbook[world.school_class.name]
    assert sheet["A1"].value == "「万名教师大家访」工作台账"
    assert sheet["A2"].value == "填报单位：城关第一小学" and sheet["C2"].value == "填报人：孙校长"
    assert "班主任：李班主任" in sheet["A3"].value
    assert [sheet.cell(row=4, column=c).value for c in (1, 2, 3, 4)] == ["序号", "学校", "班级", "学生"]
    assert sheet["A5"].value == 1 and sheet["D5"].value == world.student.name
    number = sheet["E5"].value
    assert "*" in number and number != world.student.student_number
    assert sheet["G5"].value == "已走访"
    assert any(str(row[0].value or "").startswith("审核人") for row in sheet.iter_rows())
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    assert sheet.print_title_rows == "$4:$4"
    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert event.user == world.school_admin and event.detail["rows"] == 2


def test_the_head_teacher_exports_the_class(world, phases, login):
    response = login(world.head_teacher).get(reverse("work_class_export", args=[world.school_class.pk]))
    assert _workbook(response).sheetnames == [world.school_class.name]


def test_a_zone_export_runs_as_a_task_with_progress_and_its_file_expires_after_a_day(
    world, phases, login, django_capture_on_commit_callbacks
):
    _visit(world, world.student, phase=phases)
    client = login(world.zone_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("work_export_start"), {"level": "zone", "unit": world.school.zone_id})
    job = LedgerExportJob.objects.get()
    assert response.url == reverse("ledger_export_job", args=[job.public_id])
    assert job.status == LedgerExportJob.Status.DONE and job.done_rows == 2  # eager: already run
    page = client.get(response.url).content.decode()
    assert "下载" in page
    workbook = _workbook(client.get(reverse("ledger_export_file", args=[job.public_id])))
    assert workbook.sheetnames == ["城关第一小学"]  # the zone's one school; not the other zone's
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, object_id=str(job.public_id)).count() == 2
    # Another user cannot follow or fetch it.
    other = login(world.bureau_admin)
    assert other.get(reverse("ledger_export_file", args=[job.public_id])).status_code == 404
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1, minutes=1)):
        later = login(world.zone_admin)  # sessions end after 12 hours
        assert later.get(reverse("ledger_export_file", args=[job.public_id])).status_code == 404
        assert ledger_exports_purge() == 1
    assert not job.path.exists()


def test_the_task_checks_the_scope_again_when_it_runs(world, phases, django_capture_on_commit_callbacks, login):
    client = login(world.zone_admin)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("work_export_start"), {"level": "zone", "unit": world.school.zone_id})
    job = LedgerExportJob.objects.get()
    assert job.status == LedgerExportJob.Status.QUEUED
    world.zone_admin.zone = world.other_school.zone  # moved to another zone before the task ran
    world.zone_admin.save()
    for callback in callbacks:
        callback()
    job.refresh_from_db()
    assert job.status == LedgerExportJob.Status.FAILED and "权限" in job.error
    assert not job.path.exists()


def test_a_zone_outside_the_scope_and_the_county_for_a_zone_admin_are_404(world, phases, login):
    client = login(world.zone_admin)
    other_zone = {"level": "zone", "unit": world.other_school.zone_id}
    assert client.post(reverse("work_export_start"), other_zone).status_code == 404
    assert client.post(reverse("work_export_start"), {"level": "county"}).status_code == 404
    assert not LedgerExportJob.objects.exists()
    assert login(world.inspector).post(reverse("work_export_start"), {"level": "county"}).status_code == 302
    assert world.inspector.role == Role.INSPECTOR
