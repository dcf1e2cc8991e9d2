"""The school's visit list, its XLSX export and the printable record form (DESIGN §4, §8).

The list and the export share one filter, ``VisitFilterForm``; objects are reached only through
``Visit.objects.visible_to`` and ``schools.scoping``.
"""

import datetime
import itertools
from collections.abc import Callable, Iterator

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, Model, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from schools.exports import write_xlsx
from schools.models import (
    COUNTY_ROLES,
    AuditEvent,
    Campaign,
    Grade,
    Phase,
    Role,
    School,
    SchoolClass,
    SchoolYear,
    User,
)
from schools.privacy import mask_id_number, redact_contacts, works_with_students
from schools.scoping import get_object_for_user, require_roles
from schools.services import audit_event_record
from students.models import SENSITIVE_CATEGORIES, Category, Student, StudentCategory
from visits.models import Attachment, Content, Method, Suggestion, Visit

PAGE_SIZE = 50
EXPORT_CHUNK_SIZE = 2000


class VisitFilterForm(forms.Form):
    """The filters of the visit list and its export; every field is optional and they combine."""

    school_class = forms.ModelChoiceField(
        label="班级", queryset=SchoolClass.objects.none(), required=False, empty_label="全部班级"
    )
    teacher = forms.ModelChoiceField(
        label="教师（家访或同行）", queryset=User.objects.none(), required=False, empty_label="全部教师"
    )
    method = forms.ChoiceField(label="家访方式", choices=[("", "全部方式"), *Method.choices], required=False)
    phase = forms.ModelChoiceField(label="阶段", queryset=Phase.objects.none(), required=False, empty_label="全部阶段")
    # Sensitive categories are offered too: only the school's own staff reach this filter.
    category = forms.ChoiceField(label="学生类别", choices=[("", "全部类别"), *Category.choices], required=False)
    status = forms.ChoiceField(label="状态", choices=[("", "全部状态"), *Visit.Status.choices], required=False)
    date_from = forms.DateField(
        label="开始日期", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        label="结束日期", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def __init__(self, data, *, user: User, school: School | None = None):
        """``school``: the school a county role reads (DESIGN §2); else the user's own school."""
        super().__init__(data)
        self.today = timezone.localdate()
        school_id = school.pk if school is not None else user.school_id
        self.fields["school_class"].queryset = (
            SchoolClass.objects.visible_to(user)
            .filter(school_id=school_id, school_year=SchoolYear.current(self.today))
            .order_by("grade", "number")
        )
        if not works_with_students(user):
            # The county's roles never filter by, and so never learn, a sensitive category (DESIGN §8).
            self.fields["category"].choices = [
                (code, label) for code, label in self.fields["category"].choices if code not in SENSITIVE_CATEGORIES
            ]
            # They read submitted records only.
            del self.fields["status"]
        if user.role != Role.TEACHER:
            self.fields["teacher"].queryset = User.objects.filter(school_id=school_id).order_by(
                "-is_active", "real_name", "pk"
            )
        else:
            # A teacher's list holds only their own visits and their students': a colleague menu is noise.
            del self.fields["teacher"]
        campaign = Campaign.current(self.today)
        self.fields["phase"].queryset = campaign.phases.order_by("start") if campaign else Phase.objects.none()
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise ValidationError("开始日期不能晚于结束日期。")
        return data

    def matching_students(self) -> QuerySet | None:
        """The students the class and category filters ask for, or None when neither is set."""
        data = self.cleaned_data
        if not data.get("school_class") and not data.get("category"):
            return None
        students = Student.objects.all()
        if data.get("school_class"):
            students = students.filter(school_class=data["school_class"])
        if data.get("category"):
            in_force = StudentCategory.objects.in_force_on(self.today).filter(category=data["category"])
            students = students.filter(pk__in=in_force.values("student_id"))
        return students

    def filter(self, visits: QuerySet) -> QuerySet:
        """Narrow ``visits`` (already scoped) by the valid filters. Related conditions go through
        subqueries, so that no visit is repeated and no DISTINCT is needed."""
        data = self.cleaned_data
        students = self.matching_students()
        if students is not None:
            pairs = Visit.students.through.objects.filter(student_id__in=students.values("pk"))
            visits = visits.filter(pk__in=pairs.values("visit_id"))
        if data.get("teacher"):
            joined = Visit.companions.through.objects.filter(user_id=data["teacher"].pk).values("visit_id")
            visits = visits.filter(Q(lead_teacher_id=data["teacher"].pk) | Q(pk__in=joined))
        if data.get("method"):
            visits = visits.filter(method=data["method"])
        if data.get("phase"):
            visits = visits.filter(phase=data["phase"])
        if data.get("status"):
            visits = visits.filter(status=data["status"])
        # Whole local days as aware bounds, so that the (school, status, visited_at) index serves.
        if data.get("date_from"):
            visits = visits.filter(visited_at__gte=_start_of(data["date_from"]))
        if data.get("date_to"):
            visits = visits.filter(visited_at__lt=_start_of(data["date_to"] + datetime.timedelta(days=1)))
        return visits

    def used(self) -> dict:
        """The filters in force, as JSON for the audit log."""
        used = {}
        for name, value in self.cleaned_data.items():
            if value in (None, ""):
                continue
            if isinstance(value, Model):
                value = value.pk
            elif isinstance(value, datetime.date):
                value = value.isoformat()
            used[name] = value
        return used


def _start_of(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _filtered_visits(request: HttpRequest, school: School | None = None) -> tuple[VisitFilterForm, QuerySet]:
    """The user's visits (of ``school`` if given) narrowed by the request's filters; none when a
    filter is invalid (the form then carries the message), never silently all of them."""
    form = VisitFilterForm(request.GET, user=request.user, school=school)
    visits = Visit.objects.visible_to(request.user)
    if school is not None:
        visits = visits.filter(school=school)
    if not form.is_valid():
        return form, visits.none()
    return form, form.filter(visits)


@require_roles(Role.TEACHER, Role.SCHOOL_ADMIN)
def visit_list(request: HttpRequest) -> HttpResponse:
    """A school admin sees every visit of the school, drafts included; a teacher the visits they may see."""
    return _visit_list_page(request, school=None)


@require_roles(*COUNTY_ROLES)
def school_visit_list(request: HttpRequest, school_id: int) -> HttpResponse:
    """A school's submitted visits for the county's roles that may read the school (zone admins:
    their zone's schools; inspectors and the bureau admin: every school; DESIGN §2): names, dates
    and methods, no notes, no photos, no sensitive category to filter by; the reading is audited."""
    school = get_object_for_user(School, request, pk=school_id)
    response = _visit_list_page(request, school=school)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="schools.School",
        object_id=str(school.pk),
        detail={"page": "visit_list", "filters": dict(request.GET.lists())},
    )
    return response


def _visit_list_page(request: HttpRequest, *, school: School | None) -> HttpResponse:
    form, visits = _filtered_visits(request, school)
    attachments = (
        Attachment.objects.filter(visit=OuterRef("pk")).order_by().values("visit").annotate(n=Count("pk")).values("n")
    )
    visits = (
        visits.select_related("lead_teacher", "phase")
        .prefetch_related(
            Prefetch("companions", queryset=User.objects.order_by("real_name", "pk")),
            Prefetch("students", queryset=Student.objects.select_related("school_class").order_by("name", "pk")),
        )
        .annotate(attachment_count=Coalesce(Subquery(attachments, output_field=IntegerField()), Value(0)))
        .order_by("-visited_at", "-pk")
    )
    page = Paginator(visits, PAGE_SIZE).get_page(request.GET.get("page"))
    for visit in page:
        visit.class_names = list(dict.fromkeys(s.school_class.name for s in visit.students.all() if s.school_class))
    return render(
        request,
        "visits/visit_list.html",
        {
            "form": form,
            "page": page,
            "is_school_admin": request.user.role == Role.SCHOOL_ADMIN,
            "county_school": school,
        },
    )


EXPORT_HEADER = [
    "学校",
    "班级",
    "学生",
    "学籍号",
    "家访时间",
    "方式",
    "是否入户",
    "阶段",
    "家访教师",
    "同行人员",
    "接待家长",
    "家访内容",
    "情况记录",
    "商定措施",
    "家长意见建议",
    "知情同意",
    "廉洁承诺",
    "状态",
    "提交时间",
]
EXPORT_WIDTHS = [18, 14, 10, 24, 17, 10, 9, 16, 10, 16, 16, 30, 50, 40, 40, 9, 9, 8, 17]
# The notes on the home that the county's roles do not read (DESIGN §8): left out of their export.
NOTE_COLUMNS = {"情况记录", "商定措施"}


# The columns a (visit, student) row of the export is read with, by name; plain tuples, no models.
EXPORT_FIELDS = (
    "visit_id",
    "visit__school__name",
    "student__school_class__grade",
    "student__school_class__number",
    "student__name",
    "student__student_number",
    "visit__visited_at",
    "visit__method",
    "visit__phase__kind",
    "visit__lead_teacher__real_name",
    "visit__lead_teacher__username",
    "visit__guardians_met",
    "visit__contents",
    "visit__situation",
    "visit__measures",
    "visit__consent_recorded",
    "visit__integrity_declared",
    "visit__status",
    "visit__submitted_at",
)


def visit_export_rows(pairs: QuerySet, *, full: bool = False, notes: bool = True) -> Iterator[list]:
    """One row per (visit, student): the sheet counts by student. ``pairs`` are rows of the
    visit–student table, read as tuples (``values_list``, no model instances) from a server-side
    cursor ``EXPORT_CHUNK_SIZE`` at a time; each chunk's companions and suggestions come in two
    queries, so that the query count grows with chunks, not rows, and memory stays flat.

    Identifiers are masked, and so are the phone and ID numbers typed into the free text, unless
    ``full`` (an admin's explicit full export, DESIGN §8). Without ``notes`` (the county's roles),
    the columns of ``NOTE_COLUMNS`` are left out."""
    shown = _as_typed if full else redact_contacts
    kept = [index for index, label in enumerate(EXPORT_HEADER) if notes or label not in NOTE_COLUMNS]
    yield [EXPORT_HEADER[index] for index in kept]
    rows = pairs.values_list(*EXPORT_FIELDS).iterator(chunk_size=EXPORT_CHUNK_SIZE)
    methods, phases, statuses = (
        {code: str(label) for code, label in choices.choices} for choices in (Method, Phase.Kind, Visit.Status)
    )
    contents = [(code, str(label)) for code, label in Content.choices]
    class_names: dict[tuple[int, int], str] = {}
    while chunk := list(itertools.islice(rows, EXPORT_CHUNK_SIZE)):
        visit_ids = {row[0] for row in chunk}
        companions: dict[int, list[str]] = {}
        for visit_id, real_name, username in (
            Visit.companions.through.objects.filter(visit_id__in=visit_ids)
            .order_by("user__real_name", "user_id")
            .values_list("visit_id", "user__real_name", "user__username")
        ):
            companions.setdefault(visit_id, []).append(real_name or username)
        suggestions: dict[int, list[str]] = {}
        for visit_id, text, to_school, reply in (
            Suggestion.objects.filter(visit_id__in=visit_ids)
            .order_by("pk")
            .values_list("visit_id", "text", "to_school", "reply")
        ):
            suggestions.setdefault(visit_id, []).append(
                _suggestion_text(text, to_school=to_school, reply=reply, shown=shown)
            )
        for (
            visit_id,
            school,
            grade,
            number,
            name,
            student_number,
            visited_at,
            method,
            phase,
            lead_name,
            lead_username,
            guardians_met,
            visit_contents,
            situation,
            measures,
            consent,
            integrity,
            status,
            submitted_at,
        ) in chunk:
            class_name = ""
            if grade is not None:
                class_name = class_names.get((grade, number)) or class_names.setdefault(
                    (grade, number), f"{Grade(grade).label}（{number}）班"
                )
            row = [
                school,
                class_name,
                name,
                student_number if full else mask_id_number(student_number),
                visited_at,
                methods.get(method, method),
                _yes_no(method == Method.IN_HOME),
                phases.get(phase, "") if phase else "",
                lead_name or lead_username,
                "、".join(companions.get(visit_id, ())),
                shown(guardians_met),
                "、".join(label for code, label in contents if code in (visit_contents or ())),
                shown(situation),
                shown(measures),
                "；".join(suggestions.get(visit_id, ())),
                _yes_no(consent),
                _yes_no(integrity),
                statuses.get(status, status),
                submitted_at,
            ]
            yield row if notes else [row[index] for index in kept]


def _as_typed(text: str) -> str:
    return text


def _yes_no(value: bool) -> str:
    return "是" if value else "否"


def _suggestion_text(text: str, *, to_school: bool, reply: str, shown: Callable[[str], str]) -> str:
    return shown(f"{text}（{'提交学校处理' if to_school else '答复：' + reply}）")


@require_roles(Role.SCHOOL_ADMIN)
def visit_export(request: HttpRequest) -> HttpResponse:
    """The filtered visits as XLSX, one row per visit and student, identifiers and the numbers typed
    into free text masked; audited. ``?full=1`` is the admin's explicit full export (DESIGN §8):
    numbers as stored and typed, marked ``full`` in its audit row."""
    return _visit_export(request, school=request.user.school, full=request.GET.get("full") == "1")


@require_roles(*COUNTY_ROLES)
def school_visit_export(request: HttpRequest, school_id: int) -> HttpResponse:
    """A school's submitted visits as XLSX for the county's roles that may read the school:
    identifiers and typed numbers masked, without the notes on the home; audited (DESIGN §2, §8)."""
    school = get_object_for_user(School, request, pk=school_id)
    return _visit_export(request, school=school, full=False, county=True)


def _visit_export(request: HttpRequest, *, school: School, full: bool, county: bool = False) -> HttpResponse:
    form, visits = _filtered_visits(request, school if county else None)
    if not form.is_valid():
        back = reverse("school_visit_list", args=[school.pk]) if county else reverse("visit_list")
        return redirect(f"{back}?{request.GET.urlencode()}")
    pairs = Visit.students.through.objects.filter(visit_id__in=visits.values("pk"))
    students = form.matching_students()
    if students is not None:
        # A class or category export lists only that class's (or category's) students, not their siblings.
        pairs = pairs.filter(student_id__in=students.values("pk"))
    pairs = pairs.order_by(
        "student__school_class__grade",
        "student__school_class__number",
        "student__name",
        "student_id",
        "visit__visited_at",
        "visit_id",
    )
    export = write_xlsx(
        visit_export_rows(pairs, full=full, notes=not county),
        filename=f"家访记录{'（完整）' if full else ''}_{school.name}_{timezone.localdate():%Y%m%d}.xlsx",
        sheet_title="家访记录",
        widths=[
            w for w, label in zip(EXPORT_WIDTHS, EXPORT_HEADER, strict=True) if not county or label not in NOTE_COLUMNS
        ],
    )
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="visits.Visit",
        object_id=f"school:{school.pk}",  # a student's access history finds the export by it
        detail={"filters": form.used(), "rows": export.rows, "format": "xlsx", "full": full, "school": school.pk},
    )
    return export.response()


@login_required
def visit_print(request: HttpRequest, public_id) -> HttpResponse:
    """《“万名教师大家访”大家访活动教师记录表》 laid out for A4; no ID numbers, no phone numbers; for
    the county's roles without the notes on the home and with numbers in free text masked."""
    visit = get_object_for_user(
        Visit.objects.select_related("school", "lead_teacher", "phase").prefetch_related(
            Prefetch("companions", queryset=User.objects.order_by("real_name", "pk")),
            Prefetch("students", queryset=Student.objects.select_related("school_class").order_by("name", "pk")),
            "suggestions",
        ),
        request,
        public_id=public_id,
    )
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="visits.Visit",
        object_id=str(visit.public_id),
        detail={"page": "print", "full": works_with_students(request.user)},
    )
    return render(
        request,
        "visits/visit_print.html",
        {
            "visit": visit,
            "contents": [(label, code in visit.contents) for code, label in Content.choices],
            # The county's roles print the form without the notes on the home (DESIGN §8).
            "works_in_school": works_with_students(request.user),
        },
    )
