"""Pages of the care log (关爱台账: 每日一问 / 每周一见), the school calendar and the school's group
robot. Objects are reached through ``schools.scoping``; the county's roles read with the categories
generalised, masked identifiers and no notes (DESIGN §8)."""

import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from ledgers.calendar import calendar_override_add, calendar_override_remove, school_calendar
from ledgers.care import (
    care_ask_record,
    care_log,
    care_log_audit,
    care_meeting_record,
    care_students_visible_to,
)
from ledgers.care_exports import care_month_rows
from ledgers.care_forms import CalendarOverrideForm, CareAskForm, CareMeetingForm, GroupRobotForm
from ledgers.care_models import CalendarOverride, CareAsk
from ledgers.reminders import group_robot_save
from ledgers.support import category_labels
from schools.exports import write_ledger_xlsx
from schools.models import AuditEvent, Role, School
from schools.privacy import mask_id_number, works_with_students
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from visits.models import GroupRobot

from .support import LEDGER_ROLES, _heading, _int

PAGE_SIZE = 50


def _month(value: str, today: datetime.date) -> datetime.date:
    """The first day of the month ``2026-11`` names, or of today's month."""
    year, _, month = (value or "").partition("-")
    try:
        return datetime.date(int(year), int(month), 1)
    except ValueError:
        return today.replace(day=1)


def _errors(exc: ValidationError) -> str:
    return "；".join(exc.messages)


@require_roles(*LEDGER_ROLES)
def care_overview(request: HttpRequest, school_id: int) -> HttpResponse:
    """The school's care log: compliance (asks done ÷ due, meetings done ÷ due), who was not asked
    after on the last school day and by whom, and per class and child the missed days and weeks."""
    school = get_object_for_user(School.objects.select_related("zone"), request, pk=school_id)
    whole = works_with_students(request.user)
    class_id = _int(request.GET.get("class"))
    log = care_log(school, class_id=class_id)
    page = Paginator(log.children, PAGE_SIZE).get_page(request.GET.get("page"))
    for child in page:
        child.labels = category_labels([c.category for c in child.student.care_rows], whole=whole)
        child.number = child.student.student_number if whole else mask_id_number(child.student.student_number)
    care_log_audit(request=request, object_id=str(school.pk), whole=whole, what="school")
    robot = GroupRobot.objects.filter(school=school).first() if request.user.role == Role.SCHOOL_ADMIN else None
    return render(
        request,
        "ledgers/care_overview.html",
        {
            "school": school,
            "log": log,
            "page": page,
            "whole": whole,
            "is_admin": request.user.role == Role.SCHOOL_ADMIN,
            "robot": robot,
            "class_id": class_id,
            "this_month": timezone.localdate().strftime("%Y-%m"),
            "meeting_form": CareMeetingForm(initial={"met_on": timezone.localdate()}),
        },
    )


def _care_student(request: HttpRequest, public_id):
    return get_object_for_user(
        care_students_visible_to(request.user).select_related("school", "school_class__head_teacher"),
        request,
        public_id=public_id,
    )


@login_required
def care_child(request: HttpRequest, public_id) -> HttpResponse:
    """One child's care log: every school day due with its ask (or missed), every week with its
    meeting (or missed). Head teacher, school admin; the county's roles without notes."""
    student = _care_student(request, public_id)
    whole = works_with_students(request.user)
    log = care_log(student.school, class_id=student.school_class_id)
    child = next((c for c in log.children if c.student.pk == student.pk), None)
    if child is None:
        raise Http404
    care_log_audit(request=request, object_id=str(student.public_id), whole=whole, what="child")
    days = [(day, child.asks.get(day)) for day in reversed(child.days_due)]
    weeks = [(week, child.meetings.get(week)) for week in reversed(child.weeks_due)]
    return render(
        request,
        "ledgers/care_child.html",
        {
            "student": student,
            "child": child,
            "log": log,
            "days": days,
            "weeks": weeks,
            "whole": whole,
            "labels": category_labels([c.category for c in child.student.care_rows], whole=whole),
            "number": student.student_number if whole else mask_id_number(student.student_number),
            "may_ask": request.user.role == Role.SCHOOL_ADMIN
            or (request.user.role == Role.TEACHER and student.school_class.head_teacher_id == request.user.pk),
            "may_meet": request.user.role == Role.SCHOOL_ADMIN,
            "ask_form": CareAskForm(initial={"day": timezone.localdate()}),
            "meeting_form": CareMeetingForm(initial={"met_on": timezone.localdate()}),
            "outcomes": CareAsk.Outcome.choices,
        },
    )


@require_POST
@require_roles(Role.TEACHER, Role.SCHOOL_ADMIN)
def care_ask(request: HttpRequest, public_id) -> HttpResponse:
    """Record an ask (one tap from the home page: the outcome is the button). Back to ``next``."""
    student = _care_student(request, public_id)
    form = CareAskForm(request.POST)
    if form.is_valid():
        try:
            care_ask_record(
                student=student,
                day=form.cleaned_data["day"] or timezone.localdate(),
                outcome=form.cleaned_data["outcome"],
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            messages.error(request, f"{student.name}：{_errors(exc)}")
        else:
            outcome = CareAsk.Outcome(form.cleaned_data["outcome"]).label
            messages.success(request, f"已记录{student.name}的每日一问：{outcome}。")
    else:
        messages.error(request, "请选择每日一问的情况。")
    return redirect(_next(request, reverse("care_child", args=[student.public_id])))


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def care_meeting(request: HttpRequest, public_id) -> HttpResponse:
    student = _care_student(request, public_id)
    form = CareMeetingForm(request.POST)
    if form.is_valid():
        try:
            care_meeting_record(student=student, acting_user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, f"{student.name}：{_errors(exc)}")
        else:
            messages.success(request, f"已记录与{student.name}的每周一见。")
    else:
        messages.error(request, "请填写见面日期。")
    return redirect(_next(request, reverse("care_child", args=[student.public_id])))


def _next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


@require_roles(*LEDGER_ROLES)
def care_month_export(request: HttpRequest, school_id: int) -> HttpResponse:
    """The monthly care-log sheet (``?month=2026-11``): one row per child, one column per school
    day, missed days marked. Masked unless a school admin asks for ``full=1``; audited."""
    school = get_object_for_user(School, request, pk=school_id)
    today = timezone.localdate()
    first = _month(request.GET.get("month", ""), today)
    last = (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1) - datetime.timedelta(days=1)
    full = request.GET.get("full") == "1" and request.user.role == Role.SCHOOL_ADMIN
    log = care_log(school, today=today)
    month_days = log.calendar.school_days(first, last)
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="ledgers.CareLog",
        object_id=str(school.pk),
        detail={"full": full, "month": f"{first:%Y-%m}", "rows": len(log.children)},
    )
    export = write_ledger_xlsx(
        care_month_rows(log, month_days=month_days, full=full),
        filename=f"关爱台账-{school.name}-{first:%Y年%m月}{'-完整' if full else ''}.xlsx",
        heading=_heading(request.user, school, title=f"{school.name}关爱台账（每日一问·每周一见）{first:%Y年%m月}"),
        sheet_title=f"{first:%Y-%m}",
        widths=[12, 10, 14, 10, 10, *[5] * len(month_days), 8, 8, 8, 12],
    )
    return export.response()


# --- the school calendar -------------------------------------------------------------------------


def _month_grid(calendar, first: datetime.date) -> list[list[tuple]]:
    """Weeks of the month: (day, is school day, why not) or None outside the month."""
    weeks, week = [], [None] * first.weekday()
    day = first
    while day.month == first.month:
        school_day = calendar.is_school_day(day)
        week.append((day, school_day, "" if school_day else calendar.off_reason(day)))
        if len(week) == 7:
            weeks.append(week)
            week = []
        day += datetime.timedelta(days=1)
    if week:
        weeks.append(week + [None] * (7 - len(week)))
    return weeks


@require_roles(*LEDGER_ROLES)
def school_calendar_view(request: HttpRequest, school_id: int) -> HttpResponse:
    """The school's calendar for a month: school days, why the others are not, the terms in use,
    the overrides; a year the holiday table does not know is said so. The school admin adds or
    removes the school's overrides here."""
    school = get_object_for_user(School, request, pk=school_id)
    is_admin = request.user.role == Role.SCHOOL_ADMIN
    form = CalendarOverrideForm(request.POST or None)
    if request.method == "POST":
        if not is_admin:
            deny(request, object_type="ledgers.CalendarOverride", object_id=f"add:{school.pk}")
            raise Http404
        if form.is_valid():
            try:
                calendar_override_add(school=school, acting_user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                messages.error(request, _errors(exc))
            else:
                messages.success(request, "已保存校历调整。")
                return redirect("school_calendar", school_id=school.pk)
    return _calendar_page(request, school=school, form=form, may_edit=is_admin)


@require_roles(Role.BUREAU_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR)
def county_calendar_view(request: HttpRequest) -> HttpResponse:
    """The county's calendar overrides (terms, local holidays, closures) set by the bureau admin."""
    may_edit = request.user.role == Role.BUREAU_ADMIN
    form = CalendarOverrideForm(request.POST or None)
    if request.method == "POST":
        if not may_edit:
            deny(request, object_type="ledgers.CalendarOverride", object_id="add:county")
            raise Http404
        if form.is_valid():
            try:
                calendar_override_add(school=None, acting_user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                messages.error(request, _errors(exc))
            else:
                messages.success(request, "已保存全县校历调整。")
                return redirect("county_calendar")
    return _calendar_page(request, school=None, form=form, may_edit=may_edit)


def _calendar_page(request: HttpRequest, *, school: School | None, form, may_edit: bool) -> HttpResponse:
    today = timezone.localdate()
    first = _month(request.GET.get("month", ""), today)
    calendar = school_calendar(school)
    grid = _month_grid(calendar, first)
    previous = (first - datetime.timedelta(days=1)).replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    overrides = [o for o in calendar.overrides if school is None or o.school_id in (None, school.pk)]
    return render(
        request,
        "ledgers/calendar.html",
        {
            "school": school,
            "calendar": calendar,
            "grid": grid,
            "first": first,
            "previous": previous,
            "following": following,
            "terms": calendar.terms_around(first),
            "overrides": overrides,
            "unknown_years": sorted(calendar.unknown_years),
            "form": form,
            "may_edit": may_edit,
            "school_days": sum(1 for week in grid for cell in week if cell and cell[1]),
        },
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN, Role.BUREAU_ADMIN)
def calendar_override_delete(request: HttpRequest, pk: int) -> HttpResponse:
    if request.user.role == Role.BUREAU_ADMIN:
        queryset = CalendarOverride.objects.filter(school__isnull=True)
    else:
        queryset = CalendarOverride.objects.filter(school_id=request.user.school_id)
    override = queryset.filter(pk=pk).first()
    if override is None:
        deny(request, object_type="ledgers.CalendarOverride", object_id=str(pk))
        raise Http404
    try:
        calendar_override_remove(override=override, acting_user=request.user)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, "已删除校历调整。")
    if override.school_id:
        return redirect("school_calendar", school_id=override.school_id)
    return redirect("county_calendar")


# --- the school's group robot --------------------------------------------------------------------


@require_roles(Role.SCHOOL_ADMIN)
def school_robot(request: HttpRequest, school_id: int) -> HttpResponse:
    """The school's own group robot (WeCom or DingTalk): where the reminders' digests go; without
    one they go to the county's. Shows when it last failed."""
    school = get_object_for_user(School, request, pk=school_id)
    robot = GroupRobot.objects.filter(school=school).first()
    form = GroupRobotForm(request.POST or None, instance=robot)
    if request.method == "POST" and form.is_valid():
        try:
            group_robot_save(school=school, values=form.cleaned_data, acting_user=request.user)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(request, "已保存群机器人设置。")
            return redirect("school_robot", school_id=school.pk)
    return render(request, "ledgers/robot.html", {"school": school, "robot": robot, "form": form})
