"""The teacher's pages: 「我的学生」, a student's visits, and the visit record itself."""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from schools.models import AuditEvent, Role
from schools.privacy import works_with_students
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from schools.views import organisation_home
from students.models import SENSITIVE_CATEGORIES, Category, Student, StudentCategory
from visits.attachments import attachment_add, attachment_delete
from visits.forms import SuggestionFormSet, VisitForm, suggestion_initial, suggestions_from
from visits.models import Attachment, SafetyReport, Visit
from visits.periods import outside_campaign_notice
from visits.selectors import (
    Period,
    VisitStatus,
    my_students,
    student_access_events,
    student_statuses,
    visits_of_student,
)
from visits.services import VisitConflict, VisitRepeated, visit_save_draft, visit_submit
from visits.views import saved_redirect


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """A teacher lands on 「我的学生」; every other role on the organisation's pages."""
    if request.user.role != Role.TEACHER:
        return organisation_home(request)
    query = request.GET.get("q", "")[:50]
    status = request.GET.get("status", "")
    category = request.GET.get("category", "")
    period = Period.on()
    classes = my_students(request.user, period=period, query=query, status=status, category=category)
    return render(
        request,
        "visits/my_students.html",
        {
            "classes": classes,
            "campaign": period.campaign,
            "phase": period.phase,
            "query": query,
            "status": status,
            "category": category,
            "statuses": VisitStatus.LABELS.items(),
            "categories": Category.choices,
            "shown": sum(len(c.rows) for c in classes),
        },
    )


@login_required
def student_detail(request: HttpRequest, public_id) -> HttpResponse:
    """A student with their visits; the county's roles get masked identifiers and no sensitive
    category, not even through the status it would explain (需再访 of a special student)."""
    works_with = works_with_students(request.user)
    category_rows = StudentCategory.objects.all()
    if not works_with:
        category_rows = category_rows.exclude(category__in=SENSITIVE_CATEGORIES)
    student = get_object_for_user(
        Student.objects.select_related("school", "school_class__head_teacher").prefetch_related(
            "guardians", Prefetch("categories", queryset=category_rows)
        ),
        request,
        public_id=public_id,
    )
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="students.Student",
        object_id=str(student.public_id),
        detail={"full": works_with},
    )
    today = timezone.localdate()
    categories = [c for c in student.categories.all() if works_with or c.category not in SENSITIVE_CATEGORIES]
    return render(
        request,
        "visits/student_detail.html",
        {
            "student": student,
            "status": student_statuses([student], today=today)[0],
            "visits": visits_of_student(student, request.user),
            "categories": sorted(categories, key=lambda c: (not c.in_force_on(today), c.start)),
            "today": today,
            "works_with": works_with,
            "can_file": request.user.role == Role.TEACHER,
        },
    )


@require_roles(Role.TEACHER)
def visit_create(request: HttpRequest) -> HttpResponse:
    initial = {
        "visited_at": timezone.localtime().replace(second=0, microsecond=0),
        "method": "in_home",
        "submission_key": uuid.uuid4(),  # one visit per form shown, however often it is posted
    }
    report = None
    if request.GET.get("report"):
        report = get_object_for_user(
            SafetyReport.objects.prefetch_related("students", "companions"), request, public_id=request.GET["report"]
        )
        initial.update(
            visited_at=timezone.localtime(report.planned_start),
            students=list(report.students.all()),
            companions=list(report.companions.all()),
        )
    elif request.GET.get("student"):
        initial["students"] = [get_object_for_user(Student, request, public_id=request.GET["student"])]
    return _visit_form(request, visit=None, initial=initial, report=report)


@login_required
def visit_edit(request: HttpRequest, public_id) -> HttpResponse:
    visit = _visit_for_editing(request, public_id)
    initial = {
        "visited_at": timezone.localtime(visit.visited_at),
        "method": visit.method,
        "students": list(visit.students.all()),
        "companions": list(visit.companions.all()),
        "guardians_met": visit.guardians_met,
        "contents": visit.contents,
        "situation": visit.situation,
        "measures": visit.measures,
        "consent_recorded": visit.consent_recorded,
        "integrity_declared": visit.integrity_declared,
        "version": visit.version,
    }
    suggestions = [suggestion_initial(s) for s in visit.suggestions.all()]
    return _visit_form(request, visit=visit, initial=initial, suggestions=suggestions)


def _visit_for_editing(request: HttpRequest, public_id) -> Visit:
    """Its lead teacher and the school's admins may change a record; anyone else gets 404."""
    visit = get_object_for_user(Visit.objects.select_related("school", "lead_teacher"), request, public_id=public_id)
    if visit.can_edit(request.user):
        return visit
    deny(request, object_type="visits.Visit", object_id=f"edit:{visit.public_id}")
    raise Http404


def _visit_form(request, *, visit, initial, suggestions=(), report=None) -> HttpResponse:
    conflict = None
    if request.method == "POST":
        form = VisitForm(request.POST, request.FILES, user=request.user, visit=visit)
        formset = SuggestionFormSet(request.POST, prefix="suggestions")
        if form.is_valid() and formset.is_valid():
            submit = request.POST.get("action") == "submit"
            save = visit_submit if submit else visit_save_draft
            try:
                with transaction.atomic():
                    saved = save(
                        visit=visit,
                        data=form.visit_data(suggestions_from(formset)),
                        acting_user=request.user,
                        expected_version=form.cleaned_data.get("version"),
                        submission_key=form.cleaned_data.get("submission_key"),
                    )
                    if report is not None and saved.safety_report_id is None:
                        Visit.objects.filter(pk=saved.pk).update(safety_report=report)
                    for prepared in form.cleaned_data["photos"]:
                        attachment_add(visit=saved, prepared=prepared, acting_user=request.user)
            except VisitRepeated as exc:
                messages.info(request, "这份家访记录已经保存过，没有重复保存。")
                return saved_redirect(request, "visit_detail", public_id=exc.visit.public_id)
            except VisitConflict as exc:
                conflict = exc.visit
                form.add_error(
                    None, "这条记录刚被其他人修改过，您的修改没有保存。请查看下方对方保存的版本，再重新修改。"
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                if saved.is_submitted:
                    messages.success(request, "家访记录已提交。" if submit else "修改已保存，修改记录已留存。")
                else:
                    messages.info(request, "草稿已保存，可以随时回来继续填写。")
                notice = outside_campaign_notice(saved.visited_at)
                if notice:
                    messages.warning(request, notice)
                return saved_redirect(request, "visit_detail", public_id=saved.public_id)
    else:
        form = VisitForm(initial=initial, user=request.user, visit=visit)
        formset = SuggestionFormSet(initial=list(suggestions), prefix="suggestions")
    refused = form.is_bound
    return render(
        request,
        "visits/visit_form.html",
        {
            "form": form,
            "formset": formset,
            "visit": visit,
            "report": report,
            "conflict": conflict,
            # A refused form says why at the top (the page focuses it), and that the photos chosen
            # for it were not stored: the phone's copy chooses them again where it can.
            "error_summary": form.error_summary(formset) if refused else [],
            "photos_dropped": len(request.FILES.getlist("photos")) if refused else 0,
        },
    )


def _add_errors(form: VisitForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
    else:
        form.add_error(None, exc)


@login_required
def visit_detail(request: HttpRequest, public_id) -> HttpResponse:
    visit = get_object_for_user(
        Visit.objects.select_related("school", "lead_teacher", "phase").prefetch_related(
            "students__school_class", "companions", "suggestions", "attachments", "revisions__changed_by"
        ),
        request,
        public_id=public_id,
    )
    user = request.user
    can_edit = visit.can_edit(user)
    works_with = works_with_students(user)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="visits.Visit",
        object_id=str(visit.public_id),
        detail={"page": "detail", "full": works_with},
    )
    return render(
        request,
        "visits/visit_detail.html",
        {
            "visit": visit,
            "can_edit": can_edit,
            "works_with": works_with,
            # Photos of a home: only for those who work with the student (DESIGN §8).
            "attachments": list(Attachment.objects.visible_to(user).filter(visit=visit)) if works_with else [],
            "attachment_count": len(visit.attachments.all()),
        },
    )


@login_required
def attachment_file(request: HttpRequest, public_id) -> FileResponse:
    """Serve a photo or scan to someone who may see its record; never from a public URL."""
    attachment = get_object_for_user(Attachment.objects.select_related("visit"), request, public_id=public_id)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="visits.Attachment",
        object_id=str(attachment.public_id),
    )
    # Photos show in the page; a PDF is downloaded, never rendered in the site's origin. The stored
    # name may carry any extension a browser sent: the download is named by the checked type.
    is_pdf = attachment.content_type == "application/pdf"
    stem = attachment.original_name.rsplit(".", 1)[0] or "附件"
    response = FileResponse(
        attachment.path.open("rb"),
        content_type=attachment.content_type,
        as_attachment=is_pdf,
        filename=f"{stem}.{attachment.extension}",
    )
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response


@require_POST
@login_required
def attachment_remove(request: HttpRequest, public_id) -> HttpResponse:
    attachment = get_object_for_user(Attachment.objects.select_related("visit"), request, public_id=public_id)
    visit = _visit_for_editing(request, attachment.visit.public_id)
    attachment_delete(attachment=attachment, acting_user=request.user)
    messages.info(request, f"已删除附件「{attachment.original_name}」。")
    return redirect("visit_edit", public_id=visit.public_id)


ACCESS_PAGE_SIZE = 50
ACCESS_LABELS = {
    ("students.Student", AuditEvent.Action.VIEW): "查看学生信息",
    ("visits.Visit", AuditEvent.Action.VIEW): "查看家访记录",
    ("visits.Visit", AuditEvent.Action.EXPORT): "导出家访记录",
}


@require_roles(Role.SCHOOL_ADMIN, Role.BUREAU_ADMIN)
def student_access_history(request: HttpRequest, public_id) -> HttpResponse:
    """Who viewed or exported a student's record, when and from where: the school admin for any
    student of the school, the bureau admin for any student (issue 14). Paginated; the reading is
    itself audited (and so listed)."""
    student = get_object_for_user(
        Student.objects.select_related("school", "school_class"), request, public_id=public_id
    )
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="students.Student",
        object_id=str(student.public_id),
        detail={"page": "access_history"},
    )
    page = Paginator(student_access_events(student), ACCESS_PAGE_SIZE).get_page(request.GET.get("page"))
    for event in page:
        event.label = ACCESS_LABELS.get((event.object_type, event.action), event.get_action_display())
        if (event.detail or {}).get("page") == "access_history":
            event.label = "查看访问记录"
        elif (event.detail or {}).get("page") == "print":
            event.label = "打印家访记录"
    return render(request, "visits/student_access.html", {"student": student, "page": page})
