"""The work ledger pages (工作台账, DESIGN §6): per class (its head teacher, the school admin and the
county's readers) and per school (the school admin, the zone admin, inspectors, the bureau), their
XLSX exports in the 台账 layout, and the large exports of a zone or the county as a Celery task.

Objects are reached through ``schools.scoping`` only; identifiers are masked and categories
generalised on every page and export here (DESIGN §8); every export writes an audit row.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from ledgers.jobs import EXPORT_ROLES, WORK_LEDGER_TITLE, ledger_export_run
from ledgers.models import LedgerExportJob, Level
from ledgers.work import (
    GROUP_FOCUS,
    GROUP_SPECIAL,
    STATUS_CHOICES,
    campaign_phases,
    class_rollup,
    ledger_filter,
    ledger_rows,
    ledger_students,
    work_ledger_class_sheet,
    work_ledger_school_sheets,
)
from schools.exports import LedgerHeading, write_ledger_workbook
from schools.models import AuditEvent, Role, School, SchoolClass, SchoolYear, User, Zone
from schools.privacy import works_with_students
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from students.models import Category, Student

PAGE_SIZE = 50
SCHOOL_READERS = (Role.SCHOOL_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
CLASS_READERS = (Role.TEACHER, *SCHOOL_READERS)


class WorkFilterForm(forms.Form):
    """The ledger's filters; all optional, combined."""

    school_class = forms.ModelChoiceField(
        label="班级", queryset=SchoolClass.objects.none(), required=False, empty_label="全部班级"
    )
    teacher = forms.ModelChoiceField(
        label="班主任或任课教师", queryset=User.objects.none(), required=False, empty_label="全部教师"
    )
    status = forms.ChoiceField(label="状态", choices=STATUS_CHOICES, required=False)
    category = forms.ChoiceField(label="学生类别", required=False)
    date_from = forms.DateField(label="家访日期自", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="至", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, user: User, school: School, school_class: SchoolClass | None = None):
        super().__init__(data)
        year = SchoolYear.current()
        if school_class is None:
            self.fields["school_class"].queryset = SchoolClass.objects.filter(school=school, school_year=year).order_by(
                "grade", "number"
            )
            self.fields["teacher"].queryset = User.objects.filter(school=school, is_active=True).order_by(
                "real_name", "pk"
            )
        else:
            del self.fields["school_class"]
            del self.fields["teacher"]
        groups = [("", "全部学生"), (GROUP_FOCUS, "重点关注（需第二轮回访）"), (GROUP_SPECIAL, "特殊学生")]
        # The categories themselves only for the school's own staff (DESIGN §8).
        self.fields["category"].choices = groups + (list(Category.choices) if works_with_students(user) else [])
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("开始日期不能晚于结束日期。")
        return data

    def apply(self, students):
        if not self.is_valid():
            return students.none()
        data = self.cleaned_data
        return ledger_filter(
            students,
            school_class=data.get("school_class"),
            teacher=data.get("teacher"),
            status=data.get("status") or "",
            category=data.get("category") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


def _class_for_ledger(request: HttpRequest, class_id: int) -> SchoolClass:
    """The class if the user may read its ledger: its head teacher (not its other teachers), the
    school admin, the county's readers of the school; anyone else 404 (logged)."""
    school_class = get_object_for_user(
        SchoolClass.objects.select_related("school", "head_teacher"), request, pk=class_id
    )
    if request.user.role == Role.TEACHER and school_class.head_teacher_id != request.user.pk:
        deny(request, object_type="schools.SchoolClass", object_id=str(class_id))
        raise Http404
    return school_class


def _ledger_page(request: HttpRequest, students, form: WorkFilterForm):
    page = Paginator(form.apply(students), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = ledger_rows(list(page))
    return page, rows


@require_roles(*CLASS_READERS)
def work_class(request: HttpRequest, class_id: int) -> HttpResponse:
    """One class's work ledger: every active student with each phase's status, 待办 first."""
    school_class = _class_for_ledger(request, class_id)
    phases = campaign_phases()
    form = WorkFilterForm(request.GET, user=request.user, school=school_class.school, school_class=school_class)
    students = ledger_students(Student.objects.filter(school_class=school_class), phases)
    page, rows = _ledger_page(request, students, form)
    return render(
        request,
        "ledgers/work_ledger.html",
        {
            "school": school_class.school,
            "school_class": school_class,
            "form": form,
            "page": page,
            "rows": rows,
            "phases": phases,
            "export_url": reverse("work_class_export", args=[school_class.pk]),
        },
    )


@require_roles(*SCHOOL_READERS)
def work_school(request: HttpRequest, school_id: int) -> HttpResponse:
    """A school's work ledger: the roll-up per class with its teachers' participation, then the
    students, filterable, 待办 first."""
    school = get_object_for_user(School.objects.select_related("zone"), request, pk=school_id)
    phases = campaign_phases()
    form = WorkFilterForm(request.GET, user=request.user, school=school)
    students = ledger_students(Student.objects.filter(school=school), phases)
    page, rows = _ledger_page(request, students, form)
    return render(
        request,
        "ledgers/work_ledger.html",
        {
            "school": school,
            "form": form,
            "page": page,
            "rows": rows,
            "phases": phases,
            "rollup": class_rollup(school, phases),
            "export_url": reverse("work_school_export", args=[school.pk]),
            "can_export_zone": request.user.role in EXPORT_ROLES[Level.ZONE],
        },
    )


def _heading(user: User, unit_name: str) -> LedgerHeading:
    return LedgerHeading(title=WORK_LEDGER_TITLE, unit=unit_name, filled_by=user.display_name, phone=user.phone)


def _audit_export(request: HttpRequest, *, object_type: str, object_id: str, rows: int) -> None:
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type=object_type,
        object_id=object_id,
        detail={"ledger": "work", "rows": rows, "format": "xlsx"},
    )


@require_roles(*CLASS_READERS)
def work_class_export(request: HttpRequest, class_id: int) -> HttpResponse:
    """The class's work ledger as XLSX in the 台账 layout; identifiers masked; audited."""
    school_class = _class_for_ledger(request, class_id)
    export = write_ledger_workbook(
        [work_ledger_class_sheet(school_class, campaign_phases())],
        heading=_heading(request.user, school_class.school.name),
        filename=f"工作台账_{school_class.school.name}_{school_class.name}_{timezone.localdate():%Y%m%d}.xlsx",
    )
    _audit_export(request, object_type="schools.SchoolClass", object_id=str(school_class.pk), rows=export.rows)
    return export.response()


@require_roles(*SCHOOL_READERS)
def work_school_export(request: HttpRequest, school_id: int) -> HttpResponse:
    """The school's work ledger as XLSX: one sheet per class; identifiers masked; audited."""
    school = get_object_for_user(School, request, pk=school_id)
    export = write_ledger_workbook(
        work_ledger_school_sheets(school, campaign_phases()),
        heading=_heading(request.user, school.name),
        filename=f"工作台账_{school.name}_{timezone.localdate():%Y%m%d}.xlsx",
    )
    _audit_export(request, object_type="schools.School", object_id=str(school.pk), rows=export.rows)
    return export.response()


@require_POST
@require_roles(Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
def work_export_start(request: HttpRequest) -> HttpResponse:
    """Queue the work ledger of a zone (``level=zone&unit=<zone id>``) or of the county
    (``level=county``) as a Celery task; the requester follows its progress on the job's page."""
    level = request.POST.get("level")
    if level == Level.ZONE:
        unit = request.POST.get("unit", "")
        schools = School.objects.visible_to(request.user).filter(zone_id=unit if unit.isdigit() else 0)
        zone = Zone.objects.filter(pk=unit).first() if unit.isdigit() and schools.exists() else None
        if zone is None:
            deny(request, object_type="schools.Zone", object_id=str(unit)[:64])
            raise Http404
        unit_id, unit_name = zone.pk, zone.name
    elif level == Level.COUNTY and request.user.role in EXPORT_ROLES[Level.COUNTY]:
        unit_id, unit_name = 0, "全县"
    else:
        deny(request, object_type="view", object_id="work_export_start")
        raise Http404
    with transaction.atomic():
        job = LedgerExportJob.objects.create(
            user=request.user,
            kind=LedgerExportJob.Kind.WORK,
            level=level,
            unit_id=unit_id,
            unit_name=unit_name,
            file_name=f"工作台账_{unit_name}_{timezone.localdate():%Y%m%d}.xlsx",
        )
        transaction.on_commit(lambda: ledger_export_run.delay(job.pk))
    return redirect("ledger_export_job", public_id=job.public_id)


@require_roles(*SCHOOL_READERS)
def ledger_export_job(request: HttpRequest, public_id) -> HttpResponse:
    """The export's progress (the page refreshes itself while it runs), then its download link."""
    job = get_object_for_user(LedgerExportJob, request, public_id=public_id)
    return render(request, "ledgers/export_job.html", {"job": job})


@require_roles(*SCHOOL_READERS)
def ledger_export_file(request: HttpRequest, public_id) -> HttpResponse:
    """The finished file, for its requester only, until it expires (then 404)."""
    job = get_object_for_user(LedgerExportJob, request, public_id=public_id)
    if job.status != LedgerExportJob.Status.DONE or job.is_expired or not job.path.exists():
        raise Http404
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="ledgers.LedgerExportJob",
        object_id=str(job.public_id),
        detail={"download": True, "rows": job.done_rows},
    )
    return FileResponse(
        open(job.path, "rb"),  # noqa: SIM115 - the response closes it
        as_attachment=True,
        filename=job.file_name,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
