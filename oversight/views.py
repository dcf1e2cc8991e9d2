"""Pages of oversight (督查考核). Every object is reached through ``schools.scoping``: a model's
``visible_to`` and ``get_object_for_user`` (404 and a DENIED audit row outside the scope)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Case, Count, IntegerField, Prefetch, Q, Value, When
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from oversight import flags as quality
from oversight.exports import inspection_export_file
from oversight.forms import (
    BackCheckForm,
    InspectionForm,
    RectificationDecisionForm,
    RectificationReportForm,
    ReviewForm,
    ReviewSettingForm,
    SampleForm,
    TargetForm,
)
from oversight.models import (
    BackCheck,
    BackCheckSample,
    ExcellentCase,
    Inspection,
    RectificationFile,
    RectificationStep,
    ReviewSetting,
    inspected_schools,
)
from oversight.services import (
    CASE_STEPS,
    back_check_record,
    can_check,
    can_decide_rectification,
    can_report_rectification,
    case_advance,
    case_nominate,
    case_text_review,
    inspection_file,
    rectification_decide,
    rectification_report,
    review_mode,
    review_setting_set,
    reviewable_visits,
    sample_draw,
    target_remove,
    target_set,
    visit_review,
)
from schools.models import AuditEvent, Campaign, CampaignTarget, Phase, Role, School
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from visits.attachments import attachment_prepare
from visits.models import Visit

PAGE_SIZE = 50
COUNTY_AND_SCHOOL_ADMINS = (Role.SCHOOL_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)


def _errors_to_messages(request: HttpRequest, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


# --- review (审核) --------------------------------------------------------------------------------


@require_roles(Role.SCHOOL_ADMIN, Role.TEACHER)
def review_queue(request: HttpRequest) -> HttpResponse:
    """The records awaiting review, oldest submission first (50 a page), with the school's setting
    for its admin. A teacher reaches it only as a head teacher of a school that lets them review."""
    user = request.user
    mode = review_mode(user.school) if user.school_id else ReviewSetting.Mode.OFF
    if user.role == Role.TEACHER and not (mode == ReviewSetting.Mode.HEAD_TEACHER and user.is_head_teacher):
        deny(request, object_type="view", object_id="review_queue")
        raise Http404
    visits = (
        reviewable_visits(user)
        .select_related("lead_teacher", "phase")
        .prefetch_related("students__school_class")
        .order_by("submitted_at", "pk")
    )
    page = Paginator(visits, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "oversight/review_queue.html",
        {
            "page": page,
            "mode": mode,
            "setting_form": ReviewSettingForm(initial={"mode": mode}) if user.role == Role.SCHOOL_ADMIN else None,
            "returned_count": Visit.objects.filter(school_id=user.school_id, status=Visit.Status.RETURNED).count(),
        },
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def review_settings(request: HttpRequest) -> HttpResponse:
    form = ReviewSettingForm(request.POST)
    if form.is_valid():
        school = get_object_for_user(School, request, pk=request.user.school_id)
        try:
            review_setting_set(school=school, mode=form.cleaned_data["mode"], acting_user=request.user)
        except ValidationError as exc:
            _errors_to_messages(request, exc)
        else:
            messages.success(request, f"已设置：{ReviewSetting.Mode(form.cleaned_data['mode']).label}。")
    return redirect("review_queue")


@require_POST
@login_required
def review_decide(request: HttpRequest, public_id) -> HttpResponse:
    """Accept or send back one record; anyone who may not review it gets 404."""
    visit = get_object_for_user(Visit.objects.select_related("school", "lead_teacher"), request, public_id=public_id)
    if not reviewable_visits(request.user).filter(pk=visit.pk).exists():
        deny(request, object_type="visits.Visit", object_id=f"review:{visit.public_id}")
        raise Http404
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "请选择审核通过或退回。")
        return redirect("visit_detail", public_id=visit.public_id)
    try:
        visit_review(
            visit=visit,
            action=form.cleaned_data["action"],
            reason=form.cleaned_data["reason"],
            acting_user=request.user,
        )
    except ValidationError as exc:
        _errors_to_messages(request, exc)
        return redirect("visit_detail", public_id=visit.public_id)
    messages.success(
        request, "已审核通过。" if form.cleaned_data["action"] == "accepted" else "已退回，教师会收到通知。"
    )
    return redirect("review_queue")


# --- back-checks (抽查回访) ---------------------------------------------------------------------------


@require_roles(Role.SCHOOL_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
def sample_list(request: HttpRequest) -> HttpResponse:
    """The samples the user may see (their 包联学校's first for an inspector) and the form to draw one."""
    user = request.user
    schools = inspected_schools(user).order_by("name")
    phases = Phase.objects.filter(campaign=Campaign.current()).order_by("start")
    form = SampleForm(request.POST or None, schools=schools, phases=phases)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sample = sample_draw(
                school=data["school"],
                phase=data["phase"],
                method=data["method"],
                size=data["size"],
                share=data["share"],
                flagged_only=data["flagged_only"],
                acting_user=user,
            )
        except ValidationError as exc:
            _errors_to_messages(request, exc)
        else:
            messages.success(request, f"已从 {sample.population} 条记录中随机抽取 {sample.size} 条。")
            return redirect("sample_detail", public_id=sample.public_id)
    samples = (
        BackCheckSample.objects.visible_to(user)
        .select_related("school", "phase", "drawn_by")
        .annotate(
            done=Count("checks", filter=~Q(checks__outcome="")),
            untrue=Count("checks", filter=Q(checks__outcome=BackCheck.Outcome.UNTRUE)),
            own=Case(When(school__in=schools, then=Value(0)), default=Value(1), output_field=IntegerField()),
        )
        .order_by("own", "-drawn_at", "-pk")
    )
    page = Paginator(samples, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "oversight/sample_list.html", {"page": page, "form": form, "can_draw": schools.exists()})


@require_roles(Role.SCHOOL_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
def sample_detail(request: HttpRequest, public_id) -> HttpResponse:
    """A sample's visits with their outcome forms (a fixed number of queries for its up to 200 rows).
    The families' contacts are on the record the checker opens, not here."""
    sample = get_object_for_user(
        BackCheckSample.objects.select_related("school", "phase", "drawn_by"), request, public_id=public_id
    )
    checks = (
        sample.checks.select_related("visit__lead_teacher", "checked_by")
        .prefetch_related("visit__students__school_class")
        .order_by("pk")
    )
    page = Paginator(checks, PAGE_SIZE).get_page(request.GET.get("page"))
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="oversight.BackCheckSample",
        object_id=str(sample.public_id),
    )
    return render(
        request,
        "oversight/sample_detail.html",
        {
            "sample": sample,
            "page": page,
            "can_check": can_check(request.user, sample),
            "outcomes": BackCheck.Outcome.choices,
        },
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
def back_check_save(request: HttpRequest, public_id) -> HttpResponse:
    check = get_object_for_user(
        BackCheck.objects.select_related("sample"),
        request,
        public_id=public_id,
    )
    form = BackCheckForm(request.POST)
    if not form.is_valid():
        messages.error(request, "请选择回访结果。")
    else:
        try:
            back_check_record(
                check=check,
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            _errors_to_messages(request, exc)
        else:
            messages.success(request, "回访结果已保存。")
    return redirect(f"{_url('sample_detail', check.sample.public_id)}?page={request.POST.get('page', '1')}#c{check.pk}")


def _url(name: str, *args) -> str:
    from django.urls import reverse  # noqa: PLC0415

    return reverse(name, args=args)


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def quality_flags(request: HttpRequest, school_id: int) -> HttpResponse:
    """The school's submitted records with quality flags, each with its explanation (50 a page); the
    flags are computed in a fixed number of queries (``oversight.flags``)."""
    school = get_object_for_user(School, request, pk=school_id)
    flags = quality.school_flags(school)
    code = request.GET.get("flag", "")
    ids = sorted((pk for pk, items in flags.items() if not code or any(f.code == code for f in items)), reverse=True)
    page = Paginator(ids, PAGE_SIZE).get_page(request.GET.get("page"))
    visits = {
        v.pk: v
        for v in Visit.objects.filter(pk__in=list(page.object_list))
        .select_related("lead_teacher")
        .prefetch_related("students__school_class")
    }
    rows = [(visits[pk], flags[pk]) for pk in page.object_list if pk in visits]
    return render(
        request,
        "oversight/quality_flags.html",
        {
            "school": school,
            "page": page,
            "rows": rows,
            "counts": [(c, quality.Code.LABELS[c], n) for c, n in quality.flag_counts(flags).items()],
            "flag": code,
            "can_draw": inspected_schools(request.user).filter(pk=school.pk).exists(),
        },
    )


# --- inspections (督查记录) and rectification (整改) ------------------------------------------------


def _inspections_for(user):
    """Visible inspections, an inspector's own and their 包联学校's first, then newest first."""
    mine = Q(inspector=user) | Q(school__inspectors__inspector=user) if user.role == Role.INSPECTOR else Q(pk=None)
    return (
        Inspection.objects.visible_to(user)
        .select_related("school", "inspector")
        .annotate(first=Case(When(mine, then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("first", "-date", "-pk")
        .distinct()
    )


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def inspection_list(request: HttpRequest) -> HttpResponse:
    inspections = _inspections_for(request.user)
    status = request.GET.get("status", "")
    today = timezone.localdate()
    if status == "overdue":
        inspections = inspections.overdue(today)
    elif status in Inspection.Status.values:
        inspections = inspections.filter(status=status)
    page = Paginator(inspections, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "oversight/inspection_list.html",
        {
            "page": page,
            "today": today,
            "status": status,
            "statuses": Inspection.Status.choices,
            "overdue_count": Inspection.objects.visible_to(request.user).overdue(today).count(),
            "can_file": request.user.role in (Role.INSPECTOR, Role.BUREAU_ADMIN),
        },
    )


@require_roles(Role.INSPECTOR, Role.BUREAU_ADMIN)
def inspection_new(request: HttpRequest) -> HttpResponse:
    schools = inspected_schools(request.user).order_by("name")
    form = InspectionForm(
        request.POST or None,
        schools=schools,
        initial={"date": timezone.localdate(), "school": request.GET.get("school")},
    )
    if request.method == "POST" and form.is_valid():
        try:
            inspection = inspection_file(**form.cleaned_data, acting_user=request.user)
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for name, errors in exc.error_dict.items():
                    for error in errors:
                        form.add_error(name if name in form.fields else None, error)
            else:
                form.add_error(None, exc)
        else:
            messages.success(request, "督查记录已保存。")
            return redirect("inspection_detail", public_id=inspection.public_id)
    return render(request, "oversight/inspection_form.html", {"form": form})


def _inspection(request: HttpRequest, public_id) -> Inspection:
    return get_object_for_user(
        Inspection.objects.select_related("school", "inspector").prefetch_related(
            Prefetch("steps", queryset=RectificationStep.objects.select_related("by").prefetch_related("files"))
        ),
        request,
        public_id=public_id,
    )


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def inspection_detail(request: HttpRequest, public_id) -> HttpResponse:
    inspection = _inspection(request, public_id)
    user = request.user
    return render(
        request,
        "oversight/inspection_detail.html",
        {
            "inspection": inspection,
            "overdue": inspection.is_overdue(),
            "report_form": RectificationReportForm() if can_report_rectification(user, inspection) else None,
            "decision_form": RectificationDecisionForm() if can_decide_rectification(user, inspection) else None,
        },
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def rectification_report_view(request: HttpRequest, public_id) -> HttpResponse:
    inspection = _inspection(request, public_id)
    form = RectificationReportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            files = [attachment_prepare(upload) for upload in request.FILES.getlist("files")]
            rectification_report(
                inspection=inspection, text=form.cleaned_data["text"], files=files, acting_user=request.user
            )
        except ValidationError as exc:
            _errors_to_messages(request, exc)
        else:
            messages.success(request, "整改情况已报送，等待督查人验收。")
    else:
        messages.error(request, "请填写整改情况。")
    return redirect("inspection_detail", public_id=inspection.public_id)


@require_POST
@require_roles(Role.INSPECTOR, Role.BUREAU_ADMIN)
def rectification_decide_view(request: HttpRequest, public_id) -> HttpResponse:
    inspection = _inspection(request, public_id)
    form = RectificationDecisionForm(request.POST)
    if form.is_valid():
        try:
            rectification_decide(
                inspection=inspection,
                accept=form.cleaned_data["decision"] == "accept",
                text=form.cleaned_data["text"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            _errors_to_messages(request, exc)
        else:
            messages.success(
                request, "已验收。" if form.cleaned_data["decision"] == "accept" else "已退回学校继续整改。"
            )
    return redirect("inspection_detail", public_id=inspection.public_id)


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def rectification_file(request: HttpRequest, public_id) -> FileResponse:
    """A rectification photo or scan, to those who may see its inspection; never from a public URL."""
    item = get_object_for_user(RectificationFile, request, public_id=public_id)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="oversight.RectificationFile",
        object_id=str(item.public_id),
    )
    is_pdf = item.content_type == "application/pdf"
    stem = item.original_name.rsplit(".", 1)[0] or "附件"
    response = FileResponse(
        item.path.open("rb"), content_type=item.content_type, as_attachment=is_pdf, filename=f"{stem}.{item.extension}"
    )
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    return response


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def inspection_export(request: HttpRequest) -> HttpResponse:
    """The visible inspections as the 督查记录台账 XLSX (DESIGN §6 layout); audited."""
    inspections = _inspections_for(request.user)
    export = inspection_export_file(
        inspections.iterator(chunk_size=2000), user=request.user, today=timezone.localdate()
    )
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="oversight.Inspection",
        object_id="list",
        detail={"rows": export.rows, "format": "xlsx"},
    )
    return export.response()


# --- the best visits chosen (家访日志评选) ------------------------------------------------------------


@login_required
def case_gallery(request: HttpRequest) -> HttpResponse:
    """The chosen cases, for all staff of the county: the reviewed public text only; no names,
    addresses or photos (DESIGN §8), no link to the record."""
    cases = ExcellentCase.objects.published().select_related("school", "teacher", "campaign").order_by("-decided_at")
    page = Paginator(cases, 20).get_page(request.GET.get("page"))
    return render(request, "oversight/case_gallery.html", {"page": page})


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def case_selection(request: HttpRequest) -> HttpResponse:
    """The selection (评选): nominations, shortlist and choices the user may see, by status."""
    cases = ExcellentCase.objects.visible_to(request.user).select_related("school", "teacher", "nominated_by")
    status = request.GET.get("status", "")
    if status in ExcellentCase.Status.values:
        cases = cases.filter(status=status)
    page = Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "oversight/case_selection.html",
        {"page": page, "status": status, "statuses": ExcellentCase.Status.choices},
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def case_nominate_view(request: HttpRequest, public_id) -> HttpResponse:
    visit = get_object_for_user(Visit, request, public_id=public_id)
    try:
        case = case_nominate(
            visit=visit,
            reason=request.POST.get("reason", "")[:300],
            title=request.POST.get("title", "")[:60],
            acting_user=request.user,
        )
    except ValidationError as exc:
        _errors_to_messages(request, exc)
        return redirect("visit_detail", public_id=visit.public_id)
    messages.success(request, "已推荐。请审核将向全县展示的内容（已自动去掉姓名和电话，地址等请人工检查）。")
    return redirect("case_detail", public_id=case.public_id)


@require_roles(*COUNTY_AND_SCHOOL_ADMINS)
def case_detail(request: HttpRequest, public_id) -> HttpResponse:
    """One case: the school admin reviews its public text here; the bureau admin moves it on."""
    case = get_object_for_user(
        ExcellentCase.objects.select_related("school", "teacher", "visit", "nominated_by", "text_reviewed_by"),
        request,
        public_id=public_id,
    )
    user = request.user
    can_edit = user.role == Role.SCHOOL_ADMIN and user.school_id == case.school_id
    if request.method == "POST" and can_edit:
        try:
            case_text_review(
                case=case,
                title=request.POST.get("title", ""),
                public_text=request.POST.get("public_text", ""),
                acting_user=user,
            )
        except ValidationError as exc:
            _errors_to_messages(request, exc)
        else:
            messages.success(request, "公开内容已审核。")
            return redirect("case_detail", public_id=case.public_id)
    return render(
        request,
        "oversight/case_detail.html",
        {
            "case": case,
            "can_edit": can_edit,
            "next_steps": [(s, ExcellentCase.Status(s).label) for s in sorted(CASE_STEPS.get(case.status, ()))]
            if user.role == Role.BUREAU_ADMIN
            else [],
        },
    )


@require_POST
@require_roles(Role.BUREAU_ADMIN)
def case_advance_view(request: HttpRequest, public_id) -> HttpResponse:
    case = get_object_for_user(ExcellentCase, request, public_id=public_id)
    try:
        case_advance(case=case, status=request.POST.get("status", ""), acting_user=request.user)
    except ValidationError as exc:
        _errors_to_messages(request, exc)
    else:
        messages.success(request, f"已改为「{case.__class__.objects.get(pk=case.pk).get_status_display()}」。")
    return redirect("case_detail", public_id=case.public_id)


# --- targets per unit -----------------------------------------------------------------------------


@require_roles(Role.INSPECTOR, Role.BUREAU_ADMIN)
def target_list(request: HttpRequest) -> HttpResponse:
    """The current campaign's targets (county, zones, schools); the bureau admin sets them here."""
    campaign = Campaign.current()
    form = TargetForm(request.POST or None)
    if request.method == "POST":
        if request.user.role != Role.BUREAU_ADMIN:
            deny(request, object_type="view", object_id="target_list")
            raise Http404
        if campaign is not None and form.is_valid():
            try:
                target_set(campaign=campaign, acting_user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _errors_to_messages(request, exc)
            else:
                messages.success(request, "目标已保存，看板按新目标判断进度。")
                return redirect("target_list")
    targets = (
        CampaignTarget.objects.filter(campaign=campaign).select_related("zone", "school").order_by("school", "zone")
        if campaign
        else []
    )
    return render(
        request,
        "oversight/targets.html",
        {"campaign": campaign, "targets": targets, "form": form, "can_edit": request.user.role == Role.BUREAU_ADMIN},
    )


@require_POST
@require_roles(Role.BUREAU_ADMIN)
def target_delete(request: HttpRequest, pk: int) -> HttpResponse:
    target = CampaignTarget.objects.filter(pk=pk).first()
    if target is None:
        deny(request, object_type="schools.CampaignTarget", object_id=str(pk))
        raise Http404
    target_remove(target=target, acting_user=request.user)
    messages.success(request, "已删除，该单位改按上一级目标。")
    return redirect("target_list")
