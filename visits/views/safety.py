"""Pages of the safety report (家访安全报告, DESIGN §5) and the in-app notification list.

Teachers file and check in; the school admin watches the board and closes what will not be checked
in. Reports are fetched only through ``schools.scoping``: outside scope is 404, logged.
"""

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from schools.models import AuditEvent, Role, User
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from students.models import Student
from visits.models import Notification, SafetyReport
from visits.safety import (
    is_overdue,
    safety_board,
    safety_report_check_in,
    safety_report_close,
    safety_report_create,
    safety_reports_mark_overdue,
    safety_reports_of_teacher,
)
from visits.safety_forms import SafetyCloseForm, SafetyReportForm, initial_report
from visits.views import saved_redirect

# The visit record form reads the report's students, companions and time from ?report=.
VISIT_FORM_PATH = "/visits/new/"
NOTIFICATIONS_PAGE_SIZE = 30


@require_roles(Role.TEACHER)
def safety_new(request: HttpRequest) -> HttpResponse:
    """「家访报备」 before leaving; opened from a student (?student=) it starts with that student and
    the roster's home address."""
    student = None
    if request.method == "GET" and request.GET.get("student"):
        student = _student_for_prefill(request, request.GET["student"])
    form = SafetyReportForm(
        request.POST or None, user=request.user, initial=initial_report(user=request.user, student=student)
    )
    if request.method == "POST" and form.is_valid():
        try:
            report = safety_report_create(teacher=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request,
                f"已报备。请在 {timezone.localtime(report.due_at):%H:%M} 前点「平安返回」，超时学校将电话联系您。",
            )
            return saved_redirect(request, "safety_mine")
    return render(request, "visits/safety_form.html", {"form": form})


@require_roles(Role.TEACHER)
def safety_mine(request: HttpRequest) -> HttpResponse:
    """The teacher's open reports with the 「平安返回」 button, and the recent ones."""
    return render(request, "visits/safety_mine.html", {"reports": safety_reports_of_teacher(request.user)})


@require_roles(Role.TEACHER, Role.SCHOOL_ADMIN)
def safety_detail(request: HttpRequest, public_id) -> HttpResponse:
    """One report. It carries a home address, so each view is logged (DESIGN §8); the county's
    roles read figures, not reports."""
    report = _report_for_user(request, public_id)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="visits.SafetyReport",
        object_id=str(report.public_id),
    )
    return _render_detail(request, report, SafetyCloseForm())


@require_POST
@require_roles(Role.TEACHER)
def safety_check_in(request: HttpRequest, public_id) -> HttpResponse:
    """「平安返回」 in one tap, then on to the visit record, prefilled from the report. Only the teacher
    who filed it checks in; companions and the school see it returned."""
    report = get_object_for_user(SafetyReport.objects.filter(teacher=request.user), request, public_id=public_id)
    report = safety_report_check_in(report=report, acting_user=request.user)
    messages.success(request, "已报平安，辛苦了！请填写这次家访的记录。")
    return redirect(f"{VISIT_FORM_PATH}?report={report.public_id}")


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def safety_close(request: HttpRequest, public_id) -> HttpResponse:
    report = _report_for_user(request, public_id)
    form = SafetyCloseForm(request.POST)
    if form.is_valid():
        try:
            safety_report_close(report=report, acting_user=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"已关闭 {report.teacher.display_name} 的报备。")
            return redirect("safety_board")
    return _render_detail(request, report, form, status=400)


@require_roles(Role.SCHOOL_ADMIN)
def safety_board_view(request: HttpRequest) -> HttpResponse:
    """Who is out and who is overdue, with the phone to call; refreshes itself every minute."""
    now = timezone.now()
    if not settings.CELERY_BROKER_URL:
        # The embedded default runs no beat, so the sweep that raises the alarm runs when the board
        # is loaded (every minute while it is open). The board itself does not depend on it: it
        # computes overdue from due_at. With a broker, beat runs the sweep every five minutes.
        safety_reports_mark_overdue(now=now)
    return render(request, "visits/safety_board.html", {"board": safety_board(request.user.school, now)})


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    """The user's notifications, newest first; the ones shown are marked read."""
    page = Paginator(Notification.objects.filter(user=request.user), NOTIFICATIONS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    unread = [n.pk for n in page.object_list if n.read_at is None]
    if unread:
        Notification.objects.filter(pk__in=unread, read_at__isnull=True).update(read_at=timezone.now())
    return render(request, "visits/notifications.html", {"page": page, "unread": set(unread)})


def _student_for_prefill(request: HttpRequest, value: str) -> Student:
    try:
        public_id = uuid.UUID(value.strip())
    except ValueError:
        # get_object_for_user would let the UUID field's ValidationError through as a 500.
        deny(request, object_type="students.Student", object_id=value[:64])
        raise Http404 from None
    return get_object_for_user(Student.objects.active(), request, public_id=public_id)


def _report_for_user(request: HttpRequest, public_id) -> SafetyReport:
    return get_object_for_user(
        SafetyReport.objects.select_related("school", "teacher", "closed_by").prefetch_related(
            Prefetch("students", queryset=Student.objects.select_related("school_class").order_by("name")),
            Prefetch("companions", queryset=User.objects.order_by("real_name")),
        ),
        request,
        public_id=public_id,
    )


def _render_detail(request: HttpRequest, report: SafetyReport, close_form: SafetyCloseForm, status: int = 200):
    user = request.user
    return render(
        request,
        "visits/safety_detail.html",
        {
            "report": report,
            "overdue": is_overdue(report, timezone.now()),
            "can_check_in": report.is_open and report.teacher_id == user.pk,
            "can_close": report.is_open and user.role == Role.SCHOOL_ADMIN,
            "close_form": close_form,
            "visit_form_url": f"{VISIT_FORM_PATH}?report={report.public_id}",
        },
        status=status,
    )
