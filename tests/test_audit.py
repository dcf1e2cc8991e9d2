"""The audit log (DESIGN §8): every view of a sensitive record, every export, every change to a
visit or a safety report, every import applied, every login, failed login and logout is written
with who, what, when and from where; the log is append-only, searchable by the bureau admin in the
back office, and purged only past its retention period by ``manage.py audit_purge``."""

import datetime
import io

import pytest
from django.contrib.admin.sites import site as admin_site
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from schools.models import AuditEvent, AuditLogIsAppendOnly, ImportJob
from tests import factories
from tests.test_dashboards import StatsBuilder
from tests.test_roster_import import imported, roster, student
from tests.test_safety import SafetyReportFactory
from tests.test_visits import form_data
from visits.models import Attachment, Method, SafetyReport, Visit
from visits.safety import safety_reports_mark_overdue

CLIENT_IP = "198.51.100.23"


@pytest.fixture
def phase(world):
    return factories.PhaseFactory()


@pytest.fixture
def stats(world, phase):
    build = StatsBuilder(phase.campaign)
    build.county(students_required=3, students_visited=1)
    build.zone(world.school.zone, students_required=2)
    build.school(world.school, students_required=2)
    build.teacher(world.teacher, students_assigned=1, students_visited=1)
    build.teacher(world.head_teacher, students_assigned=1)
    return build


def _visit(world, phase=None) -> Visit:
    visit = Visit.objects.create(
        school=world.school,
        lead_teacher=world.teacher,
        visited_at=timezone.now() - datetime.timedelta(hours=1),
        phase=phase,
        method=Method.PHONE,
        status=Visit.Status.SUBMITTED,
        submitted_at=timezone.now(),
        situation="电话沟通。",
        integrity_declared=True,
    )
    visit.students.set([world.student])
    return visit


def _attachment(world) -> Attachment:
    attachment = Attachment.objects.create(
        visit=_visit(world), original_name="a.jpg", content_type="image/jpeg", size=3, uploaded_by=world.teacher
    )
    attachment.path.parent.mkdir(parents=True, exist_ok=True)
    attachment.path.write_bytes(b"abc")
    return attachment


class Audited:
    """Runs a request from CLIENT_IP and returns the one audit row of ``action`` it wrote."""

    def __init__(self, client):
        self.client = client

    def __call__(self, method: str, url: str, action: str, data=None, **extra) -> AuditEvent:
        before = timezone.now()
        seen = set(AuditEvent.objects.filter(action=action).values_list("pk", flat=True))
        response = getattr(self.client, method)(url, data or {}, REMOTE_ADDR=CLIENT_IP, **extra)
        assert response.status_code in (200, 302), (url, response.status_code)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        rows = list(AuditEvent.objects.filter(action=action).exclude(pk__in=seen))
        assert len(rows) == 1, (url, action, rows)
        event = rows[0]
        assert event.ip == CLIENT_IP
        assert before <= event.at <= timezone.now()
        return event


@pytest.fixture
def audited(login):
    return lambda user: Audited(login(user))


# --- views of sensitive records -------------------------------------------------------------------


@pytest.mark.parametrize(("role", "full"), [("teacher", True), ("school_admin", True), ("inspector", False)])
def test_each_view_of_a_students_page_is_logged(world, audited, role, full):
    user = world.users()[role]
    url = reverse("student_detail", args=[world.student.public_id])
    event = audited(user)("get", url, AuditEvent.Action.VIEW)
    assert (event.user, event.object_type, event.object_id, event.path) == (
        user,
        "students.Student",
        str(world.student.public_id),
        url,
    )
    assert event.detail == {"full": full}


@pytest.mark.parametrize(("role", "full"), [("head_teacher", True), ("zone_admin", False)])
def test_each_view_of_a_visit_record_and_its_print_is_logged(world, audited, role, full):
    visit = _visit(world)
    user = world.users()[role]
    for name, page in (("visit_detail", "detail"), ("visit_print", "print")):
        url = reverse(name, args=[visit.public_id])
        event = audited(user)("get", url, AuditEvent.Action.VIEW)
        assert (event.user, event.object_type, event.object_id, event.path) == (
            user,
            "visits.Visit",
            str(visit.public_id),
            url,
        )
        assert event.detail == {"page": page, "full": full}


def test_each_view_of_an_attachment_is_logged(world, audited):
    attachment = _attachment(world)
    url = reverse("attachment_file", args=[attachment.public_id])
    event = audited(world.school_admin)("get", url, AuditEvent.Action.VIEW)
    assert (event.user, event.object_type, event.object_id) == (
        world.school_admin,
        "visits.Attachment",
        str(attachment.public_id),
    )


def test_each_view_of_a_safety_report_is_logged(world, audited):
    report = SafetyReportFactory(teacher=world.teacher)
    event = audited(world.teacher)("get", reverse("safety_detail", args=[report.public_id]), AuditEvent.Action.VIEW)
    assert (event.user, event.object_type, event.object_id) == (
        world.teacher,
        "visits.SafetyReport",
        str(report.public_id),
    )


# --- exports: each with its filters and its row count ------------------------------------------------


def test_the_visit_export_is_logged_with_its_filters_and_rows(world, audited, phase):
    _visit(world, phase)
    query = {"school_class": world.school_class.pk, "method": "phone"}
    event = audited(world.school_admin)("get", reverse("visit_export"), AuditEvent.Action.EXPORT, query)
    assert event.user == world.school_admin and event.object_type == "visits.Visit"
    assert event.detail == {
        "filters": {"school_class": world.school_class.pk, "method": "phone"},
        "rows": 1,
        "format": "xlsx",
        "full": False,
        "school": world.school.pk,
    }


def test_the_statistics_sheet_is_logged_with_its_filters_and_rows(world, audited, stats):
    query = {"level": "zone", "unit": world.school.zone_id}
    event = audited(world.inspector)("get", reverse("statistics_sheet"), AuditEvent.Action.EXPORT, query)
    assert event.object_type == "ledgers.UnitStatistics" and event.object_id == f"zone:{world.school.zone_id}"
    filters = {"level": "zone", "unit": world.school.zone_id, "period": "campaign", "detail": ""}
    assert event.detail["filters"] == filters
    assert event.detail["rows"] == 1 and event.detail["format"] == "xlsx"


def test_the_teacher_assessment_is_logged_with_its_filters_and_rows(world, audited, stats):
    url = reverse("teacher_assessment_xlsx", args=[world.school.pk])
    event = audited(world.zone_admin)("get", url, AuditEvent.Action.EXPORT, {"sort": "-visits"})
    assert event.object_type == "ledgers.TeacherStatistics" and event.object_id == str(world.school.pk)
    assert event.detail["filters"] == {"school": world.school.pk, "period": "campaign", "sort": "-visits"}
    assert event.detail["rows"] == 2


@pytest.mark.parametrize("kind", ["roster", "staff"])
def test_an_import_problem_list_is_logged_with_its_rows(world, audited, kind):
    job = ImportJob.objects.create(
        kind=kind,
        school=world.school,
        uploaded_by=world.school_admin,
        file_name="名单.xlsx",
        sha256="0" * 64,
        status=ImportJob.Status.VALIDATED,
        problems=[
            {"row": 3, "column": "姓名", "message": "姓名不能为空"},
            {"row": 5, "column": "班级", "message": "x"},
        ],
    )
    url = reverse(f"{kind}_import_problems", args=[job.public_id])
    event = audited(world.school_admin)("get", url, AuditEvent.Action.EXPORT)
    assert (event.object_type, event.object_id) == ("schools.ImportJob", str(job.public_id))
    assert event.detail == {"filters": {"kind": kind, "job": str(job.public_id)}, "rows": 2, "format": "xlsx"}


# --- changes ---------------------------------------------------------------------------------------


def test_each_change_to_a_visit_is_logged(world, audited, phase):
    client = audited(world.teacher)
    client("post", reverse("visit_create"), AuditEvent.Action.CHANGE, form_data(world))
    visit = Visit.objects.get()
    data = form_data(world, version=visit.version, situation="家长反映孩子近期情绪低落。")
    event = client("post", reverse("visit_edit", args=[visit.public_id]), AuditEvent.Action.CHANGE, data)
    assert (event.user, event.object_type, event.object_id) == (world.teacher, "visits.Visit", str(visit.public_id))
    assert event.detail == {"status": "submitted", "version": 2}


def test_each_change_to_a_safety_report_is_logged(world, audited):
    teacher = audited(world.teacher)
    planned = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    filing = {
        "students": [str(world.student.public_id)],
        "address": "城关镇幸福路 8 号",
        "planned_start": planned,
        "expected_minutes": "60",
        "phone": "13812345678",
    }
    filed = teacher("post", reverse("safety_new"), AuditEvent.Action.CHANGE, filing)
    report = SafetyReport.objects.get()
    assert (filed.user, filed.object_type, filed.object_id) == (
        world.teacher,
        "visits.SafetyReport",
        str(report.public_id),
    )
    assert filed.detail["event"] == "filed"
    back = teacher("post", reverse("safety_check_in", args=[report.public_id]), AuditEvent.Action.CHANGE)
    assert back.detail["event"] == "checked_in"

    other = SafetyReportFactory(teacher=world.teacher, planned_start=timezone.now() - datetime.timedelta(hours=3))
    safety_reports_mark_overdue()
    overdue = AuditEvent.objects.get(object_id=str(other.public_id), detail__event="overdue")
    assert overdue.user is None and overdue.username
    url = reverse("safety_close", args=[other.public_id])
    closed = audited(world.school_admin)("post", url, AuditEvent.Action.CHANGE, {"reason": "已电话联系，平安。"})
    assert closed.user == world.school_admin and closed.detail["event"] == "closed"


def test_an_applied_import_is_logged_with_its_counts(world, tmp_path):
    job = imported(world, roster(world, tmp_path, [student(1), student(2)]))
    assert job.status == ImportJob.Status.DONE
    event = AuditEvent.objects.get(action=AuditEvent.Action.IMPORT, detail__stage="applied")
    assert (event.user, event.object_type, event.object_id) == (
        world.school_admin,
        "schools.ImportJob",
        str(job.public_id),
    )
    assert event.detail["kind"] == "roster" and event.detail["created"] == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT, detail__stage="upload").count() == 1


# --- signing in and out ------------------------------------------------------------------------------


def test_logins_failed_logins_and_logouts_are_logged_with_the_address(world, client):
    url = reverse("login")
    client.post(url, {"username": "teacher", "password": "wrong-password"}, REMOTE_ADDR=CLIENT_IP)
    failed = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED, detail={})
    assert failed.username == "teacher" and failed.user is None and failed.ip == CLIENT_IP
    client.post(url, {"username": "teacher", "password": factories.PASSWORD}, REMOTE_ADDR=CLIENT_IP)
    login = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN)
    assert login.user == world.teacher and login.ip == CLIENT_IP
    client.post(reverse("logout"), REMOTE_ADDR=CLIENT_IP)
    logout = AuditEvent.objects.get(action=AuditEvent.Action.LOGOUT)
    assert logout.user == world.teacher and logout.ip == CLIENT_IP


# --- append-only ---------------------------------------------------------------------------------------


def _event(**fields) -> AuditEvent:
    fields = {"action": AuditEvent.Action.VIEW, "username": "someone", "object_id": "x", **fields}
    return AuditEvent.objects.create(**fields)


def test_a_stored_audit_row_cannot_be_changed_or_deleted(db):
    event = _event()
    event.object_id = "changed"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(object_id="changed")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).object_id == "x"


def test_deleting_an_account_keeps_its_audit_rows_by_username(world):
    user = factories.UserFactory(username="13800001111", school=world.school)
    _event(user=user)
    user.delete()
    event = AuditEvent.objects.get(username="someone")
    assert event.user is None


def test_the_purge_deletes_only_older_rows_in_batches(db, django_assert_max_num_queries):
    now = timezone.now()
    old = [_event(at=now - datetime.timedelta(days=400 + n)) for n in range(5)]
    recent = _event(at=now - datetime.timedelta(days=10))
    deleted = AuditEvent.objects.purge_before(now - datetime.timedelta(days=200), batch_size=2)
    assert deleted == len(old)
    assert list(AuditEvent.objects.all()) == [recent]


# --- the bureau admin's search ---------------------------------------------------------------------------


def test_the_audit_admin_searches_and_filters_and_is_read_only(world, login):
    now = timezone.now()
    _event(user=world.teacher, username="teacher", ip="10.1.2.3", path="/students/abc/")
    denied = AuditEvent.objects.create(
        action=AuditEvent.Action.DENIED, username="other_teacher", object_id="public_id=feed", ip="10.9.9.9"
    )
    AuditEvent.objects.create(action=AuditEvent.Action.LOGIN, username="ancient", at=now - datetime.timedelta(days=40))
    client = login(world.bureau_admin)
    url = reverse("admin:schools_auditevent_changelist")

    def shown(**query) -> set[str]:
        response = client.get(url, query)
        assert response.status_code == 200
        return {event.username for event in response.context["cl"].result_list}

    assert shown(q="other_teacher") == {"other_teacher"}
    assert shown(q="10.1.2") == {"teacher"}
    assert shown(q="feed") == {"other_teacher"}
    assert shown(q="/students/abc") == {"teacher"}
    assert shown(action="denied") == {"other_teacher"}
    # The date filter's 「过去7天」 link, as DateFieldListFilter builds it for an aware field.
    week_ago = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) - datetime.timedelta(days=7)
    recent = shown(at__gte=str(week_ago))
    assert "ancient" not in recent and {"teacher", "other_teacher"} <= recent

    model_admin = admin_site._registry[AuditEvent]
    assert {"username", "object_id", "ip", "path"} <= set(model_admin.search_fields)
    assert "action" in model_admin.list_filter and any("at" in str(f) for f in model_admin.list_filter)
    assert client.get(reverse("admin:schools_auditevent_add")).status_code == 403
    change_url = reverse("admin:schools_auditevent_change", args=[denied.pk])
    page = client.get(change_url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(change_url, {"object_id": "forged"}).status_code == 403
    assert client.post(reverse("admin:schools_auditevent_delete", args=[denied.pk]), {"post": "yes"}).status_code == 403
    actions = client.get(url).context["cl"].model_admin.get_actions(client.get(url).wsgi_request)
    assert "delete_selected" not in actions
    assert AuditEvent.objects.get(pk=denied.pk).object_id == "public_id=feed"


# --- retention ---------------------------------------------------------------------------------------------


def test_audit_purge_refuses_a_date_inside_the_retention_period(db):
    _event(at=timezone.now() - datetime.timedelta(days=3))
    too_recent = timezone.localdate() - datetime.timedelta(days=179)
    with pytest.raises(CommandError, match="至少保留 180 天"):
        call_command("audit_purge", before=too_recent.isoformat())
    with pytest.raises(CommandError, match="格式不对"):
        call_command("audit_purge", before="2026/01/31")
    assert AuditEvent.objects.count() == 1


def test_audit_purge_deletes_older_rows_in_batches_and_logs_itself(db):
    now = timezone.now()
    for days in (181, 200, 365, 900, 901):
        _event(at=now - datetime.timedelta(days=days))
    kept = _event(at=now - datetime.timedelta(days=100))
    before = timezone.localdate() - datetime.timedelta(days=180)
    out = io.StringIO()

    call_command("audit_purge", before=before.isoformat(), batch_size=2, stdout=out)

    assert "5 条" in out.getvalue()
    purge = AuditEvent.objects.get(detail__event="purge")
    assert purge.action == AuditEvent.Action.CHANGE and purge.username.startswith("audit_purge:")
    assert purge.detail == {"event": "purge", "before": before.isoformat(), "deleted": 5, "retention_days": 180}
    assert set(AuditEvent.objects.all()) == {kept, purge}


def test_an_empty_purge_is_still_on_record(db):
    call_command("audit_purge", before="2000-01-01", stdout=io.StringIO())
    assert AuditEvent.objects.get().detail["deleted"] == 0
