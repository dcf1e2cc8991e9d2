"""Safety reports (家访安全报告制度, DESIGN §5): filing before leaving, checking in after, the
overdue sweep and the school admin's closing, and the reads of the school's safety board.

A report is overdue once ``due_at`` (planned start + expected duration + the school's grace) has
passed without a check-in. The board computes that from ``due_at`` itself, so it is right between
two runs of the sweep; the sweep (a Celery beat job) only makes it durable and raises the alarm.
"""

import datetime
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q
from django.urls import reverse
from django.utils import timezone

from schools.importing import parse_phone
from schools.models import SCHOOL_ROLES, AuditEvent, Role, School, User
from schools.services import audit_event_record
from students.models import Student
from visits.models import SafetyReport
from visits.notify import notify

EXPECTED_MINUTES_MIN = 10
EXPECTED_MINUTES_MAX = 480
EXPECTED_MINUTES_DEFAULT = 60
# A report may be filed a little after leaving (no signal at the door), or planned ahead.
START_PAST_LIMIT = datetime.timedelta(hours=12)
START_FUTURE_LIMIT = datetime.timedelta(days=7)
CLOSE_REASON_MAX = 300
# A second tap on 「提交报备」 over a slow connection arrives as a second POST; within this window
# an identical open report is taken to be the same one.
DUPLICATE_WINDOW = datetime.timedelta(minutes=10)
# Reports claimed per transaction by the sweep: keeps row locks short when many fall due at once.
SWEEP_BATCH = 200
SWEEP_USERNAME = "定时任务"

OBJECT_TYPE = "visits.SafetyReport"


# --- writes ------------------------------------------------------------------------------------


def safety_report_create(
    *,
    teacher: User,
    students: Iterable[Student],
    companions: Iterable[User],
    address: str,
    planned_start: datetime.datetime,
    expected_minutes: int,
    phone: str,
    submission_key: uuid.UUID | None = None,
) -> SafetyReport:
    """File a report before leaving (家访报备). ``due_at`` is fixed now, with the school's grace
    period as it is today. The same report submitted twice in a row is stored once.

    ``submission_key``: the key the server rendered into the form when it was shown (hidden field
    ``submission_key``; the offline copy in the browser resends it unchanged). It is stored with
    the report under a unique constraint: a repeat with the same key returns the report the first
    one made and writes nothing. A key already used by another teacher raises ValidationError."""
    students = list(students)
    companions = list(companions)
    address = (address or "").strip()
    with transaction.atomic():
        # Serialises one teacher's submissions, so that a double tap cannot slip past the check below.
        teacher = User.objects.select_for_update(of=("self",)).select_related("school").get(pk=teacher.pk)
        if submission_key is not None:
            repeated = SafetyReport.objects.filter(submission_key=submission_key).first()
            if repeated is not None and repeated.teacher_id != teacher.pk:
                raise ValidationError("这份报备表已经提交过，请重新打开「家访报备」再填写。")
            if repeated is not None:
                return repeated
        _check_new_report(
            teacher=teacher,
            students=students,
            companions=companions,
            address=address,
            planned_start=planned_start,
            expected_minutes=expected_minutes,
            phone=phone,
        )
        phone = parse_phone(phone)
        duplicate = _recent_duplicate(
            teacher=teacher,
            students=students,
            address=address,
            planned_start=planned_start,
            expected_minutes=expected_minutes,
        )
        if duplicate is not None:
            return duplicate
        school = teacher.school
        report = SafetyReport(
            school=school,
            teacher=teacher,
            address=address,
            planned_start=planned_start,
            expected_minutes=expected_minutes,
            phone=phone,
            due_at=planned_start + datetime.timedelta(minutes=expected_minutes + school.safety_grace_minutes),
            submission_key=submission_key,
        )
        report.full_clean()
        report.save()
        report.students.set(students)
        report.companions.set(companions)
        _audit(report, acting_user=teacher, event="filed", due_at=report.due_at.isoformat())
    return report


def safety_report_check_in(*, report: SafetyReport, acting_user: User) -> SafetyReport:
    """平安返回: the teacher is back. Ends the overdue state too (the time of the alarm is kept),
    and then tells the school admins who were alarmed. Tapping twice changes nothing."""
    with transaction.atomic():
        report = (
            SafetyReport.objects.select_for_update(of=("self",)).select_related("school", "teacher").get(pk=report.pk)
        )
        if acting_user.pk != report.teacher_id:
            raise ValidationError("只有报备教师本人可以报平安。")
        if report.status == SafetyReport.Status.RETURNED or (
            report.status == SafetyReport.Status.CLOSED and report.checked_in_at
        ):
            return report
        was_overdue = report.status == SafetyReport.Status.OVERDUE
        report.checked_in_at = timezone.now()
        if report.is_open:
            report.status = SafetyReport.Status.RETURNED
        # A report closed by the school keeps its status; the check-in time is still worth having.
        report.full_clean()
        report.save(update_fields=["status", "checked_in_at"])
        _audit(report, acting_user=acting_user, event="checked_in", late=was_overdue)
        if was_overdue:
            teacher = report.teacher.display_name
            notify(
                users=_school_admins(report.school_id),
                title=f"{report.school.name}：{teacher}已平安返回",
                body=(
                    f"{teacher}已于 {_hhmm(report.checked_in_at)} 报平安"
                    f"（应于 {_hhmm(report.due_at)} 前报平安，此前已超时提醒）。"
                ),
                link=_link(report),
            )
    return report


def safety_report_close(*, report: SafetyReport, acting_user: User, reason: str) -> SafetyReport:
    """A school admin ends an open report that will not be checked in (the teacher was reached by
    phone, the visit did not happen): who, when and why are kept."""
    reason = (reason or "").strip()
    with transaction.atomic():
        report = SafetyReport.objects.select_for_update().get(pk=report.pk)
        if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != report.school_id:
            raise ValidationError("只有本校的学校管理员可以关闭报备。")
        errors = {}
        if not reason:
            errors["reason"] = "请填写关闭原因，例如“已电话联系，教师已安全到家”。"
        elif len(reason) > CLOSE_REASON_MAX:
            errors["reason"] = f"关闭原因不能超过 {CLOSE_REASON_MAX} 个字（现有 {len(reason)} 个）。"
        if not report.is_open:
            errors[None] = f"这份报备{report.get_status_display()}，无需关闭。"
        if errors:
            raise ValidationError(errors)
        report.status = SafetyReport.Status.CLOSED
        report.closed_by = acting_user
        report.closed_at = timezone.now()
        report.close_reason = reason
        report.full_clean()
        report.save(update_fields=["status", "closed_by", "closed_at", "close_reason"])
        _audit(report, acting_user=acting_user, event="closed", reason=reason)
    return report


def safety_reports_mark_overdue(*, now: datetime.datetime | None = None) -> int:
    """Mark the reports past ``due_at`` overdue and alert their schools' admins, once per report.

    Safe to run in several workers at once: each batch is claimed with ``SKIP LOCKED`` and only a
    report still out is moved, so a report is claimed, and its admins alerted, exactly once. A
    check-in holding the row lock is skipped and seen, returned, by the next run. Returns how many
    reports were marked."""
    now = now or timezone.now()
    marked = 0
    while True:
        with transaction.atomic():
            claimed = list(
                SafetyReport.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=SafetyReport.Status.OUT, due_at__lte=now, overdue_notified_at__isnull=True)
                .select_related("school", "teacher")
                .order_by("due_at", "pk")[:SWEEP_BATCH]
            )
            if not claimed:
                return marked
            SafetyReport.objects.filter(pk__in=[r.pk for r in claimed], status=SafetyReport.Status.OUT).update(
                status=SafetyReport.Status.OVERDUE, overdue_notified_at=now
            )
            admins = _school_admins_by_school({r.school_id for r in claimed})
            companions = _companion_names(claimed)
            for report in claimed:
                report.status = SafetyReport.Status.OVERDUE
                report.overdue_notified_at = now
                title, body = _overdue_message(report, companions.get(report.pk, []))
                notify(users=admins.get(report.school_id, []), title=title, body=body, link=_link(report))
                _audit(report, acting_user=None, event="overdue")
            marked += len(claimed)
        if len(claimed) < SWEEP_BATCH:
            return marked


# --- reads -------------------------------------------------------------------------------------


@dataclass
class SafetyBoard:
    """The school's board: who is overdue, who is out, and who came back or was closed today."""

    now: datetime.datetime
    overdue: list[SafetyReport] = field(default_factory=list)
    out: list[SafetyReport] = field(default_factory=list)
    ended_today: list[SafetyReport] = field(default_factory=list)


def safety_board(school: School, now: datetime.datetime | None = None) -> SafetyBoard:
    """The open reports of a school, split into overdue and out, and today's ended ones. A report
    past ``due_at`` is overdue here even if the sweep has not run yet. Three queries."""
    now = now or timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    reports = _with_people(
        SafetyReport.objects.filter(school=school).filter(
            Q(status__in=(SafetyReport.Status.OUT, SafetyReport.Status.OVERDUE))
            | Q(status=SafetyReport.Status.RETURNED, checked_in_at__gte=midnight)
            | Q(status=SafetyReport.Status.CLOSED, closed_at__gte=midnight)
        )
    )
    board = SafetyBoard(now=now)
    for report in reports:
        if not report.is_open:
            board.ended_today.append(report)
        elif is_overdue(report, now):
            report.overdue_minutes = max(0, int((now - report.due_at).total_seconds() // 60))
            board.overdue.append(report)
        else:
            board.out.append(report)
    board.overdue.sort(key=lambda r: r.due_at)
    board.out.sort(key=lambda r: r.due_at)
    board.ended_today.sort(key=lambda r: r.checked_in_at or r.closed_at, reverse=True)
    return board


@dataclass
class TeacherReports:
    open: list[SafetyReport]
    recent: list[SafetyReport]


RECENT_SHOWN = 20


def safety_reports_of_teacher(user: User, now: datetime.datetime | None = None) -> TeacherReports:
    """A teacher's reports, filed or joined: every open one, and the last few that ended. Four
    queries whatever the number."""
    now = now or timezone.now()
    mine = SafetyReport.objects.visible_to(user).order_by("-planned_start")
    open_status = (SafetyReport.Status.OUT, SafetyReport.Status.OVERDUE)
    open_reports = _with_people(mine.filter(status__in=open_status))
    recent = _with_people(mine.exclude(status__in=open_status)[:RECENT_SHOWN])
    for report in open_reports:
        report.shown_overdue = is_overdue(report, now)
    return TeacherReports(open=open_reports, recent=recent)


def is_overdue(report: SafetyReport, now: datetime.datetime) -> bool:
    """Overdue as the school should see it now: marked by the sweep, or open past ``due_at``."""
    return report.status == SafetyReport.Status.OVERDUE or (
        report.status == SafetyReport.Status.OUT and report.due_at <= now
    )


def _with_people(queryset) -> list[SafetyReport]:
    # The prefetches are applied to the list as a whole, whatever its length: one query each.
    return list(
        queryset.select_related("teacher").prefetch_related(
            Prefetch("students", queryset=Student.objects.select_related("school_class").order_by("name")),
            Prefetch("companions", queryset=User.objects.order_by("real_name")),
        )
    )


# --- rules and helpers -------------------------------------------------------------------------


def _check_new_report(
    *,
    teacher: User,
    students: list[Student],
    companions: list[User],
    address: str,
    planned_start: datetime.datetime,
    expected_minutes: int,
    phone: str,
) -> None:
    """The report's rules. Scope is checked here as well as in the form: a forged POST cannot name
    another school's student or colleague."""
    if teacher.role not in SCHOOL_ROLES or not teacher.school_id:
        raise ValidationError("只有学校的教师可以填写家访报备。")
    errors: dict[str, list[str]] = {}

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if not students:
        error("students", "请至少选择一名学生。")
    visible = set(
        Student.objects.visible_to(teacher)
        .active()
        .filter(pk__in=[s.pk for s in students], school_id=teacher.school_id)
        .values_list("pk", flat=True)
    )
    if any(s.pk not in visible for s in students):
        error("students", "所选学生不在您的学生范围内。")
    for companion in companions:
        if companion.pk == teacher.pk:
            error("companions", "同行人员中不要重复填写报备教师本人。")
            break
        if companion.school_id != teacher.school_id or not companion.is_active or companion.role not in SCHOOL_ROLES:
            error("companions", "同行人员必须是本校在职教职工。")
            break
    if not address:
        error("address", "请填写家访地址。")
    elif len(address) > 200:
        error("address", f"家访地址不能超过 200 个字（现有 {len(address)} 个）。")
    if planned_start is None or timezone.is_naive(planned_start):
        error("planned_start", "请填写计划出发时间。")
    else:
        now = timezone.now()
        if planned_start < now - START_PAST_LIMIT:
            error("planned_start", "计划出发时间不能早于 12 小时前。已经回来的家访请直接填写家访记录。")
        if planned_start > now + START_FUTURE_LIMIT:
            error("planned_start", "计划出发时间不能晚于 7 天后，请在出发当天报备。")
    if not isinstance(expected_minutes, int) or not EXPECTED_MINUTES_MIN <= expected_minutes <= EXPECTED_MINUTES_MAX:
        error("expected_minutes", f"预计用时应在 {EXPECTED_MINUTES_MIN} 到 {EXPECTED_MINUTES_MAX} 分钟之间。")
    try:
        parse_phone(phone)
    except ValueError as exc:
        error("phone", f"{exc}。请填写家访途中能接通的电话。")
    if errors:
        raise ValidationError(errors)


def _recent_duplicate(
    *, teacher: User, students: list[Student], address: str, planned_start: datetime.datetime, expected_minutes: int
) -> SafetyReport | None:
    candidates = SafetyReport.objects.filter(
        teacher=teacher,
        status=SafetyReport.Status.OUT,
        address=address,
        planned_start=planned_start,
        expected_minutes=expected_minutes,
        created_at__gte=timezone.now() - DUPLICATE_WINDOW,
    ).prefetch_related("students")
    wanted = {s.pk for s in students}
    for candidate in candidates:
        if {s.pk for s in candidate.students.all()} == wanted:
            return candidate
    return None


def _school_admins(school_id: int) -> list[User]:
    return _school_admins_by_school({school_id}).get(school_id, [])


def _school_admins_by_school(school_ids: set[int]) -> dict[int, list[User]]:
    admins: dict[int, list[User]] = defaultdict(list)
    for admin in User.objects.filter(school_id__in=school_ids, role=Role.SCHOOL_ADMIN, is_active=True):
        admins[admin.school_id].append(admin)
    return admins


def _companion_names(reports: list[SafetyReport]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = defaultdict(list)
    through = SafetyReport.companions.through.objects.filter(safetyreport_id__in=[r.pk for r in reports])
    for report_id, real_name, username in through.values_list("safetyreport_id", "user__real_name", "user__username"):
        names[report_id].append(real_name or username)
    return names


def _overdue_message(report: SafetyReport, companions: list[str]) -> tuple[str, str]:
    # Student names and the home address stay out of the message: it may go to a group chat.
    teacher = report.teacher.display_name
    along = f"（同行：{'、'.join(companions)}）" if companions else ""
    title = f"{report.school.name}：{teacher}家访超时未报平安"
    body = (
        f"{teacher}{along}计划 {_hhmm(report.planned_start)} 出发家访，预计 {report.expected_minutes} 分钟，"
        f"应于 {_hhmm(report.due_at)} 前报平安，至今未报。请立即联系：{report.phone}。"
    )
    return title, body


def _hhmm(moment: datetime.datetime) -> str:
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M")
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _link(report: SafetyReport) -> str:
    return reverse("safety_detail", args=[report.public_id])


def _audit(report: SafetyReport, *, acting_user: User | None, event: str, **detail) -> None:
    audit_event_record(
        action=AuditEvent.Action.CHANGE,
        user=acting_user,
        username="" if acting_user else SWEEP_USERNAME,
        object_type=OBJECT_TYPE,
        object_id=str(report.public_id),
        detail={"event": event, "status": report.status, **detail},
    )
