"""Pages of the organisation: schools, staff, classes, and the import workflow shared by the roster
and staff imports. Every object is fetched through ``schools.scoping``."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openpyxl
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_POST

from schools.accounts import account_unlock, locked_accounts
from schools.exports import workbook_response, write_xlsx
from schools.forms import ClassCreateForm, ImportUploadForm
from schools.importing import SheetError
from schools.models import AuditEvent, ImportJob, Role, School
from schools.privacy import redact_contacts
from schools.scoping import get_object_for_user, require_roles
from schools.selectors import classes_of_school, current_campaign_phase, schools_for_user, staff_of_school
from schools.services import (
    audit_event_record,
    import_job_cancel,
    import_job_confirm,
    import_job_create,
    import_job_passwords_take,
    school_classes_create,
)

PROBLEMS_SHOWN = 1000


@login_required
def organisation_home(request: HttpRequest) -> HttpResponse:
    """A school admin lands on the school; zone admins, inspectors and the bureau on the schools
    they may see. (Teachers land on 「我的学生」, built by the visits app.)"""
    if request.user.role == Role.SCHOOL_ADMIN:
        return redirect("school_detail", pk=request.user.school_id)
    campaign, phase = current_campaign_phase()
    return render(
        request,
        "schools/schools_home.html",
        {"rows": schools_for_user(request.user), "campaign": campaign, "phase": phase},
    )


@login_required
def school_detail(request: HttpRequest, pk: int) -> HttpResponse:
    school = get_object_for_user(School.objects.select_related("zone"), request, pk=pk)
    classes = classes_of_school(school)
    campaign, phase = current_campaign_phase()
    is_admin = request.user.role == Role.SCHOOL_ADMIN
    return render(
        request,
        "schools/school_detail.html",
        {
            "school": school,
            "classes": classes,
            "student_total": sum(c.student_count for c in classes),
            "staff_total": school.staff.filter(is_active=True).count(),
            "campaign": campaign,
            "phase": phase,
            "is_admin": is_admin,
            "recent_imports": ImportJob.objects.visible_to(request.user).filter(school=school)[:5] if is_admin else [],
        },
    )


@login_required
def school_staff(request: HttpRequest, pk: int) -> HttpResponse:
    school = get_object_for_user(School, request, pk=pk)
    return render(request, "schools/staff_list.html", {"school": school, "staff": staff_of_school(school)})


@require_roles(Role.SCHOOL_ADMIN)
def class_create(request: HttpRequest) -> HttpResponse:
    school = request.user.school
    form = ClassCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = school_classes_create(
                school=school,
                grade=form.cleaned_data["grade"],
                numbers=form.cleaned_data["numbers"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if created:
                messages.success(request, f"已添加 {len(created)} 个班级：{'、'.join(c.name for c in created)}。")
            else:
                messages.info(request, "这些班级都已存在，没有新增。")
            return redirect("class_create")
    return render(
        request, "schools/class_form.html", {"form": form, "school": school, "classes": classes_of_school(school)}
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    """Changing the password also clears the first-login requirement of imported accounts."""

    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        if self.request.user.must_change_password:
            self.request.user.must_change_password = False
            self.request.user.save(update_fields=["must_change_password"])
        return response


# --- imports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportSpec:
    """One kind of import: its two Celery tasks (which know the importer), its template and URL names."""

    kind: str
    title: str
    validate_task: object
    apply_task: object
    template_workbook: Callable[[], openpyxl.Workbook]
    url_prefix: str
    hint: str

    def url(self, suffix: str, *args) -> str:
        return reverse(f"{self.url_prefix}_{suffix}", args=args)


def _job_for_user(request: HttpRequest, spec: ImportSpec, public_id) -> ImportJob:
    return get_object_for_user(
        ImportJob.objects.filter(kind=spec.kind).select_related("uploaded_by"), request, public_id=public_id
    )


@require_roles(Role.SCHOOL_ADMIN)
def import_upload(request: HttpRequest, spec: ImportSpec) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = import_job_create(
                kind=spec.kind, school=request.user.school, uploaded_by=request.user, upload=form.cleaned_data["file"]
            )
        except SheetError as exc:
            form.add_error("file", str(exc))
        else:
            # robust: a broker that is down must not turn the stored upload into an error page.
            transaction.on_commit(lambda: spec.validate_task.delay(job.pk), robust=True)
            return redirect(spec.url("job", job.public_id))
    recent = ImportJob.objects.visible_to(request.user).filter(kind=spec.kind)[:10]
    return render(request, "imports/upload.html", {"form": form, "spec": spec, "recent": recent})


@require_roles(Role.SCHOOL_ADMIN)
def import_job(request: HttpRequest, public_id, spec: ImportSpec) -> HttpResponse:
    job = _job_for_user(request, spec, public_id)
    return render(
        request,
        "imports/job.html",
        {
            "job": job,
            "spec": spec,
            "problems": job.problems[:PROBLEMS_SHOWN],
            "problems_hidden": max(0, len(job.problems) - PROBLEMS_SHOWN),
            "accounts": import_job_passwords_take(job=job),
        },
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def import_job_confirm_view(request: HttpRequest, public_id, spec: ImportSpec) -> HttpResponse:
    job = _job_for_user(request, spec, public_id)
    skip_invalid = request.POST.get("skip_invalid") == "1"
    if import_job_confirm(job=job, acting_user=request.user, skip_invalid=skip_invalid):
        transaction.on_commit(lambda: spec.apply_task.delay(job.pk), robust=True)
    else:
        messages.warning(request, "这个导入任务已在处理或不能导入，请查看当前状态。")
    return redirect(spec.url("job", job.public_id))


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def import_job_cancel_view(request: HttpRequest, public_id, spec: ImportSpec) -> HttpResponse:
    job = _job_for_user(request, spec, public_id)
    if import_job_cancel(job=job, acting_user=request.user):
        messages.info(request, "已取消，没有导入任何数据。")
    return redirect(spec.url("upload"))


@require_roles(Role.SCHOOL_ADMIN)
def import_problems_xlsx(request: HttpRequest, public_id, spec: ImportSpec) -> HttpResponse:
    """The problem list as a workbook, so that a clerk can work through it beside the roster."""
    job = _job_for_user(request, spec, public_id)
    export = write_xlsx(
        _problem_rows(job), filename=f"{spec.title}错误清单.xlsx", sheet_title="错误清单", widths=[8, 20, 80, 14]
    )
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="schools.ImportJob",
        object_id=str(job.public_id),
        detail={"filters": {"kind": spec.kind, "job": str(job.public_id)}, "rows": export.rows, "format": "xlsx"},
    )
    return export.response()


def _problem_rows(job: ImportJob) -> Iterator[list]:
    # The sheet is a column only when the file had more than one sheet read.
    sheets = any(problem.get("sheet") for problem in job.problems)
    yield ["行号", "列", "问题", *(["工作表"] if sheets else [])]
    for problem in job.problems:
        yield [problem["row"], problem["column"], problem["message"], *([problem.get("sheet", "")] if sheets else [])]


@require_roles(Role.SCHOOL_ADMIN)
def import_template(request: HttpRequest, spec: ImportSpec) -> HttpResponse:
    audit_event_record(action=AuditEvent.Action.EXPORT, request=request, object_type="template", object_id=spec.kind)
    return workbook_response(spec.template_workbook(), filename=f"{spec.title}模板.xlsx")


@require_roles(Role.BUREAU_ADMIN)
def locked_accounts_view(request: HttpRequest) -> HttpResponse:
    """Accounts locked now by either login-failure rule (per address, per account; settings block
    "Login failures"), with one action to unlock each. Bureau admin only (DESIGN §2: accounts)."""
    return render(request, "schools/locked_accounts.html", {"accounts": locked_accounts()})


@require_POST
@require_roles(Role.BUREAU_ADMIN)
def locked_account_unlock(request: HttpRequest) -> HttpResponse:
    """Clear every counted failure of one username (all addresses); audited as a change."""
    username = request.POST.get("username", "")[:150]
    removed = account_unlock(username=username, acting_user=request.user, request=request)
    if removed:
        messages.success(request, f"已解锁账号 {redact_contacts(username)}。")
    else:
        messages.info(request, "该账号当前没有锁定记录。")
    return redirect("locked_accounts")
