"""One table of who reaches what: every URL of the project that names an object, for every named
user of the ``world`` fixture, with the answer the design gives (DESIGN §2): the page (200), a
redirect where that is the design (302, e.g. after a POST), or 404 — never 403 — and then a DENIED
audit row saying who, what, from where and when.

The table cannot silently miss a URL: ``test_every_url_that_names_an_object_is_in_the_matrix``
walks the resolver and fails with the names of any pattern with a path converter that is neither in
the table nor excluded below with a reason. Objects named in a query string (``?student=``,
``?report=``, an export's filters) are listed too, as rows of their view.

Student identifiers in URLs are opaque UUIDs, never 学籍号 or 身份证件号: see the tests at the end.
"""

import datetime
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import UUIDConverter
from django.utils import timezone

from schools.models import AuditEvent, ImportJob, Phase
from tests import factories
from tests.test_dashboards import StatsBuilder
from tests.test_safety import SafetyReportFactory
from visits.models import Attachment, Method, SafetyReport, Visit

ROLES = (
    "teacher",
    "head_teacher",
    "school_admin",
    "zone_admin",
    "inspector",
    "bureau_admin",
    "other_teacher",
    "other_admin",
)
CLIENT_IP = "203.0.113.7"  # set as REMOTE_ADDR, so that the audit row's address is seen to come from the request

# Patterns with a path converter that the matrix does not list, each with the reason.
EXCLUDED_NAMESPACES = {
    "admin": "Django's admin site: only is_staff accounts pass its own login gate (everyone else is sent to "
    "its login page, see the admin row below and tests/test_pages.py); the models it shows are read-only "
    "or minimised (tests/test_audit.py, tests/test_privacy.py).",
}
EXCLUDED_NAMES: dict[str, str] = {}
# Views that take an object in the query string rather than the path: each must have a row.
QUERY_OBJECT_VIEWS = {"visit_create", "safety_new", "visit_export", "statistics_sheet", "work_export_start"}


# --- the objects the URLs name -------------------------------------------------------------------


def _visit(w, *, status: str = Visit.Status.SUBMITTED) -> Visit:
    """The teacher's phone visit to 王小明 (3年级2班, the head teacher's class)."""
    visit = Visit.objects.create(
        school=w.school,
        lead_teacher=w.teacher,
        visited_at=timezone.now() - datetime.timedelta(hours=2),
        method=Method.PHONE,
        status=status,
        submitted_at=timezone.now() if status == Visit.Status.SUBMITTED else None,
        situation="电话沟通，孩子在家表现良好。",
        integrity_declared=True,
    )
    visit.students.set([w.student])
    return visit


def _draft(w) -> Visit:
    return _visit(w, status=Visit.Status.DRAFT)


def _attachment(w) -> Attachment:
    attachment = Attachment.objects.create(
        visit=_visit(w), original_name="家门口.jpg", content_type="image/jpeg", size=3, uploaded_by=w.teacher
    )
    attachment.path.parent.mkdir(parents=True, exist_ok=True)
    attachment.path.write_bytes(b"abc")
    return attachment


def _report(w) -> SafetyReport:
    """An open report of the teacher, the head teacher going along."""
    return SafetyReportFactory(teacher=w.teacher, students=[w.student], companions=[w.head_teacher])


def _job(w, kind: str) -> ImportJob:
    """A validated job of the school with nothing to import (confirming it changes nothing)."""
    return ImportJob.objects.create(
        kind=kind,
        school=w.school,
        uploaded_by=w.school_admin,
        file_name="名单.xlsx",
        sha256="0" * 64,
        status=ImportJob.Status.VALIDATED,
        problems=[{"row": 3, "column": "姓名", "message": "姓名不能为空"}],
    )


def _stats(w) -> None:
    """Stored statistics for the county, both zones, both schools, the classes and the teachers, so that
    every dashboard answers from its row (tests/test_dashboards.py checks the not-yet-computed path)."""
    campaign = factories.CampaignFactory()
    factories.PhaseFactory(campaign=campaign, kind=Phase.Kind.FULL_ROUND)
    build = StatsBuilder(campaign)
    build.county(students_required=3, students_visited=1)
    for school in (w.school, w.other_school):
        build.zone(school.zone, students_required=1)
        build.school(school, students_required=1)
    for school_class in (w.school_class, w.plain_class, w.other_class):
        build.school_class(school_class, students_required=1)
    for teacher in (w.teacher, w.head_teacher, w.school_admin, w.other_teacher):
        build.teacher(teacher, students_assigned=1)


def _with_stats(url_for: Callable) -> Callable:
    def build(w) -> str:
        _stats(w)
        return url_for(w)

    return build


# --- the feedback ledger and the work ledger (issue 11) -------------------------------------------


def _item(w, *, status: str = "open"):
    """An item passed to the school by the family of 王小明, on the teacher's submitted visit."""
    from visits.models import Suggestion

    visit = _visit(w)
    return Suggestion.objects.create(
        visit=visit,
        school=w.school,
        text="希望延长课后服务时间",
        to_school=True,
        raised_on=timezone.localdate(),
        status=status,
        visit_submitted=True,
    )


def _issue(w):
    from visits.models import FeedbackIssue

    issue = FeedbackIssue.objects.create(school=w.school, title="校门口接送拥堵", category="transport")
    item = _item(w, status="in_progress")
    item.issue = issue
    item.save()
    return issue


def _export_job(w, *, with_file: bool = False):
    from ledgers.models import LedgerExportJob

    job = LedgerExportJob.objects.create(
        user=w.zone_admin,
        kind="work",
        level="zone",
        unit_id=w.school.zone_id,
        unit_name=w.school.zone.name,
        file_name="工作台账.xlsx",
        status="done" if with_file else "running",
        expires_at=timezone.now() + datetime.timedelta(days=1) if with_file else None,
    )
    if with_file:
        job.path.parent.mkdir(parents=True, exist_ok=True)
        job.path.write_bytes(b"PK")
    return job


# --- the matrix ----------------------------------------------------------------------------------

SCHOOL = {"teacher", "head_teacher", "school_admin"}
COUNTY = {"zone_admin", "inspector", "bureau_admin"}
SEES_THE_SCHOOL = SCHOOL | COUNTY
SCHOOL_ADMIN = {"school_admin"}
SCHOOL_DASHBOARDS = {"school_admin"} | COUNTY


@dataclass(frozen=True)
class Row:
    """One URL: its pattern name, what it is, how to build it, the method, and who gets the answer
    ``ok``; every other user gets 404 unless ``others`` says otherwise."""

    name: str
    what: str
    url_for: Callable
    allowed: set[str]
    ok: int = 200
    method: str = "get"
    data: dict | Callable = field(default_factory=dict)  # or a function of the world, for ids made per case
    others: dict[str, int] = field(default_factory=dict)
    # What a DENIED row names when it is not an id of the URL: e.g. the visit of an attachment.
    denied_object: str = ""

    def expected(self, role: str) -> int:
        if role in self.allowed:
            return self.ok
        return self.others.get(role, 404)


MATRIX = [
    # students
    Row(
        "student_detail",
        "a student of the head teacher's class",
        lambda w: _url("student_detail", w.student.public_id),
        SEES_THE_SCHOOL,
    ),
    Row(
        "student_detail",
        "a student of a class the teacher does not teach",
        lambda w: _url("student_detail", w.plain_student.public_id),
        {"school_admin"} | COUNTY,
    ),
    Row(
        "student_detail",
        "a student of the other school",
        lambda w: _url("student_detail", w.other_student.public_id),
        {"other_teacher", "other_admin", "inspector", "bureau_admin"},
    ),
    Row(
        "student_access_history",
        "who looked at a student's record",
        lambda w: _url("student_access_history", w.student.public_id),
        {"school_admin", "bureau_admin"},
    ),
    Row(
        "student_access_history",
        "who looked at the other school's student",
        lambda w: _url("student_access_history", w.other_student.public_id),
        {"other_admin", "bureau_admin"},
    ),
    Row("class_detail", "the head teacher's class", lambda w: _url("class_detail", w.school_class.pk), SEES_THE_SCHOOL),
    Row(
        "class_detail",
        "a class the teacher does not teach",
        lambda w: _url("class_detail", w.plain_class.pk),
        {"school_admin"} | COUNTY,
    ),
    # visits and their attachments
    Row("visit_detail", "a submitted visit", lambda w: _url("visit_detail", _visit(w).public_id), SEES_THE_SCHOOL),
    Row("visit_detail", "a draft", lambda w: _url("visit_detail", _draft(w).public_id), {"teacher", "school_admin"}),
    Row(
        "visit_edit",
        "correcting a submitted visit",
        lambda w: _url("visit_edit", _visit(w).public_id),
        {"teacher", "school_admin"},
    ),
    Row(
        "visit_print", "printing a submitted visit", lambda w: _url("visit_print", _visit(w).public_id), SEES_THE_SCHOOL
    ),
    Row(
        "visit_print",
        "printing a draft",
        lambda w: _url("visit_print", _draft(w).public_id),
        {"teacher", "school_admin"},
    ),
    Row("attachment_file", "a photo of a visit", lambda w: _url("attachment_file", _attachment(w).public_id), SCHOOL),
    Row(
        "attachment_remove",
        "deleting a photo",
        lambda w: _url("attachment_remove", _attachment(w).public_id),
        {"teacher", "school_admin"},
        ok=302,
        method="post",
        denied_object="edit:",  # the head teacher sees the photo, but may not change its record
    ),
    Row(
        "visit_create",
        "a new visit for a student",
        lambda w: _url("visit_create") + f"?student={w.student.public_id}",
        {"teacher", "head_teacher"},
    ),
    Row(
        "visit_create",
        "a new visit from a safety report",
        lambda w: _url("visit_create") + f"?report={_report(w).public_id}",
        {"teacher", "head_teacher"},
    ),
    Row(
        "visit_export",
        "the visit export filtered to a class",
        lambda w: _url("visit_export") + f"?school_class={w.school_class.pk}",
        SCHOOL_ADMIN,
        others={"other_admin": 302},
    ),  # a class outside the filter's menu: back to the list, no rows
    # a school's visits for the county's roles (issue 14)
    Row(
        "school_visit_list",
        "the school's visits",
        lambda w: _url("school_visit_list", w.school.pk) + f"?school_class={_visit(w).students.get().school_class_id}",
        COUNTY,
    ),
    Row(
        "school_visit_list",
        "the other school's visits",
        lambda w: _url("school_visit_list", w.other_school.pk),
        {"inspector", "bureau_admin"},
    ),
    Row(
        "school_visit_export",
        "the school's visit export",
        lambda w: (
            _url("school_visit_export", w.school.pk) + f"?school_class={_visit(w).students.get().school_class_id}"
        ),
        COUNTY,
    ),
    Row(
        "school_visit_export",
        "the other school's visit export",
        lambda w: _url("school_visit_export", w.other_school.pk),
        {"inspector", "bureau_admin"},
    ),
    # safety reports
    Row("safety_detail", "a report", lambda w: _url("safety_detail", _report(w).public_id), SCHOOL),
    Row(
        "safety_check_in",
        "平安返回",
        lambda w: _url("safety_check_in", _report(w).public_id),
        {"teacher"},
        ok=302,
        method="post",
    ),
    Row(
        "safety_close",
        "closing a report",
        lambda w: _url("safety_close", _report(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"reason": "已电话联系，教师平安。"},
    ),
    Row(
        "safety_new",
        "a report from a student",
        lambda w: _url("safety_new") + f"?student={w.student.public_id}",
        {"teacher", "head_teacher"},
    ),
    # the school, its staff and its imports
    Row("school_detail", "the school", lambda w: _url("school_detail", w.school.pk), SEES_THE_SCHOOL),
    Row("school_staff", "the school's staff", lambda w: _url("school_staff", w.school.pk), SEES_THE_SCHOOL),
    Row(
        "roster_import_job",
        "a roster import",
        lambda w: _url("roster_import_job", _job(w, "roster").public_id),
        SCHOOL_ADMIN,
    ),
    Row(
        "roster_import_problems",
        "a roster import's problem list",
        lambda w: _url("roster_import_problems", _job(w, "roster").public_id),
        SCHOOL_ADMIN,
    ),
    Row(
        "roster_import_confirm",
        "confirming a roster import",
        lambda w: _url("roster_import_confirm", _job(w, "roster").public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
    ),
    Row(
        "roster_import_cancel",
        "cancelling a roster import",
        lambda w: _url("roster_import_cancel", _job(w, "roster").public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
    ),
    Row(
        "roster_import_job",
        "a staff import through the roster URL",
        lambda w: _url("roster_import_job", _job(w, "staff").public_id),
        set(),
    ),
    Row(
        "staff_import_job",
        "a staff import",
        lambda w: _url("staff_import_job", _job(w, "staff").public_id),
        SCHOOL_ADMIN,
    ),
    Row(
        "staff_import_problems",
        "a staff import's problem list",
        lambda w: _url("staff_import_problems", _job(w, "staff").public_id),
        SCHOOL_ADMIN,
    ),
    Row(
        "staff_import_confirm",
        "confirming a staff import",
        lambda w: _url("staff_import_confirm", _job(w, "staff").public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
    ),
    Row(
        "staff_import_cancel",
        "cancelling a staff import",
        lambda w: _url("staff_import_cancel", _job(w, "staff").public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
    ),
    # dashboards of a unit, the teacher assessment and the statistics sheet
    Row(
        "statistics_zone", "the school's zone", _with_stats(lambda w: _url("statistics_zone", w.school.zone_id)), COUNTY
    ),
    Row(
        "statistics_zone",
        "the other zone",
        _with_stats(lambda w: _url("statistics_zone", w.other_school.zone_id)),
        {"inspector", "bureau_admin"},
    ),
    Row(
        "statistics_school",
        "the school",
        _with_stats(lambda w: _url("statistics_school", w.school.pk)),
        SCHOOL_DASHBOARDS,
    ),
    Row(
        "statistics_class",
        "a class of the school",
        _with_stats(lambda w: _url("statistics_class", w.school.pk, w.school_class.pk)),
        SCHOOL_DASHBOARDS,
    ),
    Row(
        "statistics_class",
        "the other school's class under this school's URL",
        _with_stats(lambda w: _url("statistics_class", w.school.pk, w.other_class.pk)),
        set(),
    ),
    Row(
        "teacher_assessment",
        "the school's teachers",
        _with_stats(lambda w: _url("teacher_assessment", w.school.pk)),
        SCHOOL_DASHBOARDS,
    ),
    Row(
        "teacher_assessment_xlsx",
        "the school's teachers as XLSX",
        _with_stats(lambda w: _url("teacher_assessment_xlsx", w.school.pk)),
        SCHOOL_DASHBOARDS,
    ),
    Row(
        "statistics_sheet",
        "the school's statistics sheet",
        _with_stats(lambda w: _url("statistics_sheet") + f"?level=school&unit={w.school.pk}"),
        SCHOOL_DASHBOARDS,
    ),
    Row(
        "statistics_sheet",
        "the zone's statistics sheet",
        _with_stats(lambda w: _url("statistics_sheet") + f"?level=zone&unit={w.school.zone_id}"),
        COUNTY,
    ),
    Row(
        "statistics_sheet",
        "the county's statistics sheet",
        _with_stats(lambda w: _url("statistics_sheet") + "?level=county&unit=0"),
        {"inspector", "bureau_admin"},
    ),
    # the feedback ledger (问题反馈台账) and the work ledger (工作台账), issue 11
    Row(
        "feedback_ledger",
        "the feedback ledger (each sees their own scope's)",
        lambda w: _url("feedback_ledger"),
        {"school_admin", "other_admin"} | COUNTY,
    ),
    Row(
        "feedback_export",
        "the feedback ledger as XLSX",
        lambda w: _url("feedback_export"),
        {"school_admin", "other_admin"} | COUNTY,
    ),
    Row("feedback_county", "problems across schools", lambda w: _url("feedback_county"), COUNTY),
    Row(
        "feedback_item",
        "an item of the school",
        lambda w: _url("feedback_item", _item(w).public_id),
        {"school_admin"} | COUNTY,
    ),
    Row(
        "feedback_item_triage",
        "triaging an item",
        lambda w: _url("feedback_item_triage", _item(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"category": "teaching", "nature": "individual", "status": "in_progress"},
    ),
    Row(
        "feedback_item_escalate",
        "escalating an item",
        lambda w: _url("feedback_item_escalate", _item(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"note": "需教育局协调。"},
    ),
    Row(
        "feedback_item_reply",
        "the bureau's reply to an escalated item",
        lambda w: _url("feedback_item_reply", _item(w, status="escalated").public_id),
        {"inspector", "bureau_admin"},
        ok=302,
        method="post",
        data={"reply": "已协调。", "close": "on"},
    ),
    Row(
        "feedback_group",
        "grouping an item of the school under a common problem",
        lambda w: _url("feedback_group"),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data=lambda w: {"items": [str(_item(w).public_id)], "title": "午餐价格", "category": "fees"},
        others={"other_admin": 302},  # nothing checked that they may see: back to the ledger
    ),
    Row(
        "feedback_issue",
        "a common problem",
        lambda w: _url("feedback_issue", _issue(w).public_id),
        {"school_admin"} | COUNTY,
    ),
    Row(
        "feedback_issue_resolve",
        "resolving a common problem",
        lambda w: _url("feedback_issue_resolve", _issue(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"resolution": "已协调交警执勤。", "reply_method": "meeting"},
    ),
    Row(
        "work_class",
        "the head teacher's class ledger",
        lambda w: _url("work_class", w.school_class.pk),
        {"head_teacher", "school_admin"} | COUNTY,
    ),
    Row(
        "work_class",
        "a class the head teacher does not head",
        lambda w: _url("work_class", w.plain_class.pk),
        {"school_admin"} | COUNTY,
    ),
    Row(
        "work_class_export",
        "the class ledger as XLSX",
        lambda w: _url("work_class_export", w.school_class.pk),
        {"head_teacher", "school_admin"} | COUNTY,
    ),
    Row("work_school", "the school's work ledger", lambda w: _url("work_school", w.school.pk), SCHOOL_DASHBOARDS),
    Row(
        "work_school",
        "the other school's work ledger",
        lambda w: _url("work_school", w.other_school.pk),
        {"other_admin", "inspector", "bureau_admin"},
    ),
    Row(
        "work_school_export",
        "the school's work ledger as XLSX",
        lambda w: _url("work_school_export", w.school.pk),
        SCHOOL_DASHBOARDS,
    ),
    Row(
        "work_export_start",
        "a zone's work ledger as a task",
        lambda w: _url("work_export_start"),
        COUNTY,
        ok=302,
        method="post",
        data=lambda w: {"level": "zone", "unit": str(w.school.zone_id)},
    ),
    Row(
        "ledger_export_job",
        "the zone admin's export job",
        lambda w: _url("ledger_export_job", _export_job(w).public_id),
        {"zone_admin"},
    ),
    Row(
        "ledger_export_file",
        "the zone admin's exported file",
        lambda w: _url("ledger_export_file", _export_job(w, with_file=True).public_id),
        {"zone_admin"},
    ),
    # the admin site's own gate, for the record: a redirect to its login page, not a 404
    Row(
        "admin:schools_auditevent_changelist",
        "the audit log in the admin site",
        lambda w: _url("admin:schools_auditevent_changelist"),
        {"bureau_admin"},
        others=dict.fromkeys(set(ROLES) - {"bureau_admin"}, 302),
    ),
    # the health endpoint (monitoring/views.py): the load balancer's status code for anyone, the
    # operator's page (services, counts and ages, no personal data) for the bureau admin only
    Row("health", "the load balancer's health check", lambda w: _url("health"), set(ROLES)),
    Row("health_detail", "the operator's health page", lambda w: _beating() or _url("health_detail"), {"bureau_admin"}),
]


# --- the special-student ledgers (issue 10) ----------------------------------------------------------


def _orphan(w):
    """王小明 (the head teacher's class) as an orphan: a care student, and special (left-behind) too."""
    from students.models import StudentCategory

    start = timezone.localdate() - datetime.timedelta(days=30)
    for category in ("orphan", "left_behind"):
        StudentCategory.objects.get_or_create(student=w.student, category=category, defaults={"start": start})
    return w.student


def _support_plan(w):
    from ledgers.care_models import SupportPlan
    from schools.models import SchoolYear

    _orphan(w)
    factories.SchoolYearFactory()
    return SupportPlan.objects.create(
        student=w.student,
        school=w.school,
        school_year=SchoolYear.current(),
        study_measures="每周辅导两次。",
        next_review_on=timezone.localdate() + datetime.timedelta(days=30),
    )


def _school_override(w):
    from ledgers.care_models import CalendarOverride

    today = timezone.localdate()
    return CalendarOverride.objects.create(school=w.school, kind="holiday", start=today, end=today, name="地方假日")


LEDGER_READERS = {"school_admin"} | COUNTY
MATRIX += [
    Row(
        "support_plan_detail",
        "the plan of a student of the head teacher's class",
        lambda w: _url("support_plan_detail", _support_plan(w).public_id),
        {"head_teacher", "school_admin"} | COUNTY,
    ),
    Row(
        "support_plan_edit",
        "changing a plan",
        lambda w: _url("support_plan_edit", _support_plan(w).public_id),
        {"head_teacher", "school_admin"},
        denied_object="edit:",
    ),
    Row(
        "support_plan_create",
        "a new plan for a special student",
        lambda w: _url("support_plan_create") + f"?student={_orphan(w).public_id}",
        {"head_teacher", "school_admin"},
    ),
    Row(
        "support_overview",
        "the school's support ledger",
        lambda w: _url("support_overview", w.school.pk),
        LEDGER_READERS,
    ),
    Row(
        "support_export",
        "the school's support ledger as XLSX",
        lambda w: _url("support_export", w.school.pk),
        LEDGER_READERS,
    ),
    Row("care_overview", "the school's care log", lambda w: _url("care_overview", w.school.pk), LEDGER_READERS),
    Row(
        "care_month_export",
        "the school's monthly care sheet",
        lambda w: _url("care_month_export", w.school.pk),
        LEDGER_READERS,
    ),
    Row(
        "care_child",
        "an orphan's care log",
        lambda w: _url("care_child", _orphan(w).public_id),
        {"head_teacher", "school_admin"} | COUNTY,
    ),
    Row(
        "care_ask",
        "recording an orphan's daily ask",
        lambda w: _url("care_ask", _orphan(w).public_id),
        {"head_teacher", "school_admin"},
        ok=302,
        method="post",
        data={"outcome": "face"},
    ),
    Row(
        "care_meeting",
        "recording the weekly meeting",
        lambda w: _url("care_meeting", _orphan(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"met_on": timezone.localdate().isoformat()},
    ),
    Row(
        "school_calendar",
        "the school's calendar",
        lambda w: _url("school_calendar", w.school.pk),
        LEDGER_READERS,
    ),
    Row(
        "calendar_override_delete",
        "removing the school's local holiday",
        lambda w: _url("calendar_override_delete", _school_override(w).pk),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
    ),
    Row("school_robot", "the school's group robot", lambda w: _url("school_robot", w.school.pk), SCHOOL_ADMIN),
]
QUERY_OBJECT_VIEWS |= {"support_plan_create"}


def _beating() -> None:
    """A worker and a beat that answered moments ago, so that the page is healthy (200)."""
    from monitoring.models import Heartbeat
    from monitoring.services import heartbeat_stamp

    for name in Heartbeat.Name.values:
        heartbeat_stamp(name=name)


def _url(name: str, *args) -> str:
    return reverse(name, args=args)


# --- oversight (督查考核, issue 12) ----------------------------------------------------------------


def _reviewing(w) -> Visit:
    """A submitted visit of the teacher in a school that reviews (by its admin only)."""
    from oversight.models import ReviewSetting

    ReviewSetting.objects.create(school=w.school, mode=ReviewSetting.Mode.ADMIN)
    return _visit(w)


def _sample(w, *, by: str = "inspector"):
    from oversight.services import sample_draw

    _visit(w)
    return sample_draw(school=w.school, size=1, acting_user=getattr(w, by))


def _inspection(w):
    from oversight.services import inspection_file

    return inspection_file(
        school=w.school,
        date=timezone.localdate(),
        how="on_site",
        findings="家访记录不全。",
        rectification="补全记录。",
        deadline=timezone.localdate() + datetime.timedelta(days=7),
        acting_user=w.inspector,
    )


def _rectification_file(w):
    from oversight.models import RectificationFile
    from oversight.services import rectification_report

    step = rectification_report(inspection=_inspection(w), text="已补全。", acting_user=w.school_admin)
    item = RectificationFile.objects.create(step=step, original_name="整改.jpg", content_type="image/jpeg", size=3)
    item.path.parent.mkdir(parents=True, exist_ok=True)
    item.path.write_bytes(b"abc")
    return item


def _phase_visit(w) -> Visit:
    visit = _visit(w)
    visit.phase = factories.PhaseFactory(kind=Phase.Kind.FULL_ROUND)
    visit.save()
    return visit


def _case(w):
    from oversight.services import case_nominate

    return case_nominate(visit=_phase_visit(w), reason="记录细致", acting_user=w.school_admin)


def _target(w):
    from schools.models import CampaignTarget

    return CampaignTarget.objects.create(
        campaign=factories.CampaignFactory(),
        zone=w.school.zone,
        coverage=95,
        participation=100,
        focus_coverage=100,
        special_in_home=100,
    )


OVERSIGHT_ADMINS = {"school_admin", "zone_admin", "inspector", "bureau_admin"}
SCHOOL_ADMINS_AND_COUNTY = {"school_admin", "other_admin", "zone_admin", "inspector", "bureau_admin"}
MATRIX += [
    Row(
        "review_decide",
        "returning a record in a school that reviews",
        lambda w: _url("review_decide", _reviewing(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"action": "returned", "reason": "请补充"},
    ),
    Row("review_queue", "the records awaiting review", lambda w: _url("review_queue"), {"school_admin", "other_admin"}),
    Row(
        "review_settings",
        "the school's review setting",
        lambda w: _url("review_settings"),
        {"school_admin", "other_admin"},
        ok=302,
        method="post",
        data={"mode": "admin"},
    ),
    Row(
        "sample_list",
        "the back-check samples",
        lambda w: _url("sample_list"),
        {"school_admin", "other_admin", "inspector", "bureau_admin"},
    ),
    Row(
        "sample_detail",
        "a sample the inspector drew",
        lambda w: _url("sample_detail", _sample(w).public_id),
        {"inspector", "bureau_admin"},
    ),
    Row(
        "sample_detail",
        "a sample the school drew",
        lambda w: _url("sample_detail", _sample(w, by="school_admin").public_id),
        {"school_admin", "inspector", "bureau_admin"},
    ),
    Row(
        "back_check_save",
        "an outcome of the inspector's sample",
        lambda w: _url("back_check_save", _sample(w).checks.get().public_id),
        {"inspector", "bureau_admin"},
        ok=302,
        method="post",
        data={"outcome": "true", "note": ""},
    ),
    Row("quality_flags", "the school's quality flags", lambda w: _url("quality_flags", w.school.pk), OVERSIGHT_ADMINS),
    Row("inspection_list", "the inspections", lambda w: _url("inspection_list"), SCHOOL_ADMINS_AND_COUNTY),
    Row("inspection_new", "filing an inspection", lambda w: _url("inspection_new"), {"inspector", "bureau_admin"}),
    Row("inspection_export", "the inspections as XLSX", lambda w: _url("inspection_export"), SCHOOL_ADMINS_AND_COUNTY),
    Row(
        "inspection_detail",
        "an inspection of the school",
        lambda w: _url("inspection_detail", _inspection(w).public_id),
        OVERSIGHT_ADMINS,
    ),
    Row(
        "rectification_report",
        "reporting a rectification",
        lambda w: _url("rectification_report", _inspection(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"text": "已整改。"},
    ),
    Row(
        "rectification_decide",
        "accepting a rectification",
        lambda w: _url("rectification_decide", _inspection(w).public_id),
        {"inspector", "bureau_admin"},
        ok=302,
        method="post",
        data={"decision": "accept"},
    ),
    Row("case_gallery", "the chosen cases", lambda w: _url("case_gallery"), set(ROLES)),
    Row("case_selection", "the selection", lambda w: _url("case_selection"), SCHOOL_ADMINS_AND_COUNTY),
    Row(
        "case_nominate",
        "nominating a visit",
        lambda w: _url("case_nominate", _phase_visit(w).public_id),
        SCHOOL_ADMIN,
        ok=302,
        method="post",
        data={"reason": "记录细致"},
    ),
    Row("case_detail", "a nominated case", lambda w: _url("case_detail", _case(w).public_id), OVERSIGHT_ADMINS),
    Row(
        "case_advance",
        "shortlisting a case",
        lambda w: _url("case_advance", _case(w).public_id),
        {"bureau_admin"},
        ok=302,
        method="post",
        data={"status": "shortlisted"},
    ),
    Row("target_list", "the targets", lambda w: _url("target_list"), {"inspector", "bureau_admin"}),
    Row(
        "target_delete",
        "removing a zone's target",
        lambda w: _url("target_delete", _target(w).pk),
        {"bureau_admin"},
        ok=302,
        method="post",
    ),
    Row(
        "rectification_file",
        "a photo of a rectification",
        lambda w: _url("rectification_file", _rectification_file(w).public_id),
        OVERSIGHT_ADMINS,
    ),
]


CASES = [pytest.param(row, role, id=f"{row.name}[{row.what}]-{role}") for row in MATRIX for role in ROLES]


@pytest.mark.parametrize(("row", "role"), CASES)
def test_each_role_gets_what_the_design_gives_and_a_404_is_logged(world, login, row: Row, role: str):
    url = row.url_for(world)
    user = world.users()[role]
    expected = row.expected(role)
    denied = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED)
    before_count = denied.count()
    before = timezone.now()

    data = row.data(world) if callable(row.data) else row.data
    response = getattr(login(user), row.method)(url, data, REMOTE_ADDR=CLIENT_IP)

    after = timezone.now()
    assert response.status_code == expected, f"{role} on {row.name} ({row.what})"
    if expected != 404:
        assert denied.count() == before_count, "an answer other than 404 writes no DENIED row"
        return
    assert denied.count() == before_count + 1
    event = denied.order_by("-pk").first()
    assert event.user == user and event.username == user.username
    assert event.ip == CLIENT_IP
    assert before <= event.at <= after
    assert event.path == urllib.parse.urlsplit(url).path
    assert event.object_type
    assert _names_the_object(event.object_id, url, row.name) or (
        row.denied_object and event.object_id.startswith(row.denied_object)
    ), event.object_id


def _names_the_object(object_id: str, url: str, name: str) -> bool:
    """The DENIED row names what was asked for: an id from the path or the query string, or the view
    when the role itself may not open it."""
    if object_id == name.split(":")[-1]:
        return True
    parts = urllib.parse.urlsplit(url)
    wanted = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", parts.path)
    wanted += [value for values in urllib.parse.parse_qs(parts.query).values() for value in values]
    return any(value in object_id for value in wanted)


# --- the matrix misses no URL ---------------------------------------------------------------------


def _patterns(patterns=None, namespace: str = "", prefix: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    """(name with its namespace, full route, pattern) of every named URL pattern, through the includes."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _patterns(pattern.url_patterns, inner, prefix + str(pattern.pattern))
        elif pattern.name:
            yield f"{namespace}{pattern.name}", prefix + str(pattern.pattern), pattern


def _converters(pattern: URLPattern) -> dict:
    return getattr(pattern.pattern, "converters", {}) or {}


def _excluded(name: str) -> bool:
    return name in EXCLUDED_NAMES or name.split(":")[0] in EXCLUDED_NAMESPACES and ":" in name


def test_every_url_that_names_an_object_is_in_the_matrix():
    with_object = {name for name, _route, pattern in _patterns() if _converters(pattern)}
    assert len(with_object) > 25  # the walk went through the includes
    listed = {row.name for row in MATRIX}
    missing = sorted(name for name in with_object - listed if not _excluded(name))
    assert not missing, f"URL patterns with an object id missing from MATRIX: {missing}"
    assert not QUERY_OBJECT_VIEWS - listed, f"views taking an object in the query string: {QUERY_OBJECT_VIEWS - listed}"
    known = {name for name, _route, _pattern in _patterns()}
    assert not listed - known, f"rows of the matrix for URLs that no longer exist: {listed - known}"


# --- student identifiers in URLs are opaque ---------------------------------------------------------

IDENTIFYING = ("student_number", "id_number", "学籍号", "身份证", "idcard", "id_card")


def test_no_url_pattern_carries_a_student_number_or_an_id_number():
    for name, route, pattern in _patterns():
        assert not any(word in route.lower() for word in IDENTIFYING), (name, route)
        assert not any(word in key.lower() for key in _converters(pattern) for word in IDENTIFYING), (name, route)


def test_every_url_of_a_person_or_a_record_takes_a_uuid():
    """Students, visits, attachments, safety reports and import jobs are named by a random UUID; only the
    organisation (schools, classes, zones) goes by its database number."""
    for name, route, pattern in _patterns():
        if _excluded(name) or not route.startswith(
            ("students/", "visits/", "attachments/", "safety/", "roster/", "staff/")
        ):
            continue
        for converter in _converters(pattern).values():
            assert isinstance(converter, UUIDConverter), (name, route)


def test_a_student_url_resolves_by_public_id_and_a_student_number_in_its_place_is_404(world, login):
    client = login(world.teacher)
    assert client.get(reverse("student_detail", args=[world.student.public_id])).status_code == 200
    for identifier in (world.student.student_number, "11010519491231002X", str(world.student.pk)):
        assert client.get(f"/students/{identifier}/").status_code == 404


@pytest.mark.parametrize("view", ["visit_create", "safety_new"])
def test_a_student_number_in_a_query_string_is_404_and_logged_not_an_error(world, login, view):
    response = login(world.teacher).get(reverse(view), {"student": world.student.student_number})
    assert response.status_code == 404
    event = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert event.user == world.teacher and event.object_type == "students.Student"


def test_pages_link_to_students_by_public_id_only(world, login):
    page = login(world.school_admin).get(reverse("class_detail", args=[world.school_class.pk])).content.decode()
    assert reverse("student_detail", args=[world.student.public_id]) in page
    assert world.student.student_number not in page


def test_an_unknown_uuid_is_404_and_logged_like_a_record_out_of_scope(world, login):
    missing = uuid.uuid4()
    response = login(world.bureau_admin).get(reverse("student_detail", args=[missing]), REMOTE_ADDR=CLIENT_IP)
    assert response.status_code == 404
    event = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert str(missing) in event.object_id and event.ip == CLIENT_IP
