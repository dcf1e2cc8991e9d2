"""Pages of the support ledger (特殊学生帮扶台账, 一生一策): the school's overview, a teacher's list,
the plan page, its form, and the XLSX export. Objects are reached through ``schools.scoping``;
the county's roles read with the categories generalised, masked identifiers and no notes (DESIGN §8)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from ledgers.care_exports import support_rows
from ledgers.care_forms import SupportPlanForm
from ledgers.care_models import SupportPlan
from ledgers.support import (
    DEFAULT_REVIEW_AFTER,
    PAGE_SIZE,
    RowStatus,
    can_edit_plan,
    category_labels,
    plan_audit_view,
    plan_page,
    support_ledger,
    support_plan_save,
)
from schools.exports import LedgerHeading, write_ledger_xlsx
from schools.models import AuditEvent, Role, School, SchoolYear, User
from schools.privacy import mask_id_number, works_with_students
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from students.models import SPECIAL_CATEGORIES, Category, Student, StudentCategory

LEDGER_ROLES = (Role.SCHOOL_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@require_roles(*LEDGER_ROLES)
def support_overview(request: HttpRequest, school_id: int) -> HttpResponse:
    """The school's support ledger: counts per class (special, 待建档, 待复核, 入户不足2次) with links,
    and the rows filtered by category, class, responsible teacher and status, 50 a page."""
    school = get_object_for_user(School.objects.select_related("zone"), request, pk=school_id)
    whole = works_with_students(request.user)
    category = request.GET.get("category", "") if whole else ""
    status = request.GET.get("status", "")
    class_id = _int(request.GET.get("class"))
    teacher_id = _int(request.GET.get("teacher"))
    ledger = support_ledger(
        school, user=request.user, category=category, class_id=class_id, teacher_id=teacher_id, status=status
    )
    page = Paginator(ledger.rows, PAGE_SIZE).get_page(request.GET.get("page"))
    for row in page:
        row.labels = category_labels(row.categories, whole=whole)
        row.number = row.student.student_number if whole else mask_id_number(row.student.student_number)
        row.status_labels = [(code, RowStatus.LABELS[code]) for code in row.statuses()]
    teachers = {row.responsible.pk: row.responsible for row in ledger.rows if row.responsible is not None}
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="ledgers.SupportLedger",
        object_id=str(school.pk),
        detail={"full": whole, "rows": len(ledger.rows)},
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ledgers/support_overview.html",
        {
            "school": school,
            "ledger": ledger,
            "page": page,
            "whole": whole,
            "is_admin": request.user.role == Role.SCHOOL_ADMIN,
            "categories": [(c, Category(c).label) for c in SPECIAL_CATEGORIES] if whole else [],
            "statuses": RowStatus.LABELS.items(),
            "teachers": sorted(teachers.values(), key=lambda u: u.display_name),
            "classes": [c.school_class for c in ledger.classes if c.school_class is not None],
            "filters": {"category": category, "status": status, "class": class_id, "teacher": teacher_id},
            "query": query.urlencode(),
        },
    )


@require_roles(Role.TEACHER, Role.SCHOOL_ADMIN)
def support_mine(request: HttpRequest) -> HttpResponse:
    """A teacher's special students (head teacher or responsible) with their plan status; a school
    admin goes to the school's overview."""
    if request.user.role == Role.SCHOOL_ADMIN:
        return redirect("support_overview", school_id=request.user.school_id)
    ledger = support_ledger(request.user.school, user=request.user)
    for row in ledger.rows:
        row.labels = category_labels(row.categories, whole=True)
        row.status_labels = [(code, RowStatus.LABELS[code]) for code in row.statuses()]
    return render(request, "ledgers/support_mine.html", {"ledger": ledger})


def _plan(request: HttpRequest, public_id) -> SupportPlan:
    return get_object_for_user(
        SupportPlan.objects.select_related(
            "student__school_class__head_teacher", "school", "school_year", "responsible_teacher", "created_by"
        ).prefetch_related(Prefetch("student__categories", queryset=StudentCategory.objects.all())),
        request,
        public_id=public_id,
    )


@login_required
def support_plan_detail(request: HttpRequest, public_id) -> HttpResponse:
    """The plan page: categories, responsible teacher, consent, the four headings, review dates and
    status; the student's visits this school year with the in-home count against 2; the timeline."""
    plan = _plan(request, public_id)
    page = plan_page(plan, user=request.user)
    plan_audit_view(plan=plan, request=request, whole=page.whole)
    return render(
        request,
        "ledgers/support_plan.html",
        {
            "plan": plan,
            "page": page,
            "responsible": plan.responsible_teacher
            or (plan.student.school_class.head_teacher if plan.student.school_class_id else None),
            "can_edit": can_edit_plan(request.user, plan.student, plan),
            "today": timezone.localdate(),
        },
    )


@require_roles(Role.TEACHER, Role.SCHOOL_ADMIN)
def support_plan_create(request: HttpRequest) -> HttpResponse:
    """A new plan for ``?student=`` (a special student of the user's scope with no plan this year)."""
    student = get_object_for_user(
        Student.objects.select_related("school", "school_class__head_teacher").prefetch_related("categories"),
        request,
        public_id=request.GET.get("student", ""),
    )
    if not can_edit_plan(request.user, student):
        deny(request, object_type="students.Student", object_id=f"plan:{student.public_id}")
        raise Http404
    year = SchoolYear.current()
    existing = SupportPlan.objects.filter(student=student, school_year=year).first() if year else None
    if existing is not None:
        return redirect("support_plan_detail", public_id=existing.public_id)
    initial = {"next_review_on": timezone.localdate() + DEFAULT_REVIEW_AFTER}
    return _plan_form(request, student=student, plan=None, initial=initial)


@require_roles(Role.TEACHER, Role.SCHOOL_ADMIN)
def support_plan_edit(request: HttpRequest, public_id) -> HttpResponse:
    plan = _plan(request, public_id)
    if not can_edit_plan(request.user, plan.student, plan):
        deny(request, object_type="ledgers.SupportPlan", object_id=f"edit:{plan.public_id}")
        raise Http404
    plan_audit_view(plan=plan, request=request, whole=True)
    return _plan_form(request, student=plan.student, plan=plan, initial={})


def _plan_form(request: HttpRequest, *, student: Student, plan: SupportPlan | None, initial: dict) -> HttpResponse:
    may_name = request.user.role == Role.SCHOOL_ADMIN
    form = SupportPlanForm(
        request.POST or None, instance=plan, initial=initial, school=student.school, may_name_teacher=may_name
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = support_plan_save(
                student=student,
                plan=plan,
                values=form.values(),
                acting_user=request.user,
                reviewed=form.cleaned_data.get("reviewed", False),
                expected_version=_int(request.POST.get("version")),
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]:
                for error in errors:
                    form.add_error(name if name in form.fields else None, error)
        else:
            messages.success(request, f"已保存{student.name}的帮扶计划。")
            return redirect("support_plan_detail", public_id=saved.public_id)
    today = timezone.localdate()
    return render(
        request,
        "ledgers/support_form.html",
        {
            "form": form,
            "student": student,
            "plan": plan,
            "categories": category_labels(student.categories_on(today), whole=True),
        },
    )


@require_roles(*LEDGER_ROLES)
def support_export(request: HttpRequest, school_id: int) -> HttpResponse:
    """The support ledger as XLSX in the 台账 layout. Masked (number, no categories beyond 「特殊学生」,
    no measures) unless a school admin asks for ``?full=1``; each export is audited."""
    school = get_object_for_user(School, request, pk=school_id)
    full = request.GET.get("full") == "1" and request.user.role == Role.SCHOOL_ADMIN
    ledger = support_ledger(school, user=request.user)
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="ledgers.SupportLedger",
        object_id=str(school.pk),
        detail={"full": full, "rows": len(ledger.rows)},
    )
    heading = _heading(request.user, school, title=f"{school.name}特殊学生帮扶台账（{ledger.year or ''}学年）")
    export = write_ledger_xlsx(
        support_rows(ledger, full=full),
        filename=f"特殊学生帮扶台账-{school.name}{'-完整' if full else ''}.xlsx",
        heading=heading,
        sheet_title="帮扶台账",
        widths=[12, 10, 14, 22, 10, 12, 12, 30, 30, 30, 30, 12, 10, 12],
    )
    return export.response()


def _heading(user: User, school: School, *, title: str) -> LedgerHeading:
    return LedgerHeading(
        title=title,
        unit=school.name,
        filled_by=user.display_name,
        phone=user.phone or school.contact_phone,
        day=timezone.localdate(),
    )
