"""The feedback ledger pages (问题反馈台账, DESIGN §6): the school's list with its ageing and
common problems, an item with its history and the school's triage, escalation to the bureau, the
bureau's reply, the county view of problems across schools, and the export in the 台账 layout.

Items and issues are reached only through their ``visible_to`` and ``schools.scoping``; the
county's roles read the family's words with numbers masked and without students' names (DESIGN §8).
"""

import datetime
import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Prefetch, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from schools.exports import LedgerHeading, LedgerSheet, write_ledger_workbook
from schools.models import AuditEvent, InspectorAssignment, Role, School, SchoolClass, SchoolYear, User
from schools.privacy import redact_contacts, works_with_students
from schools.scoping import get_object_for_user, require_roles
from schools.services import audit_event_record
from students.models import Student
from visits.feedback import (
    TRIAGE_STATUSES,
    Triage,
    feedback_by_category_and_status,
    feedback_issue_add_items,
    feedback_issue_create,
    feedback_issue_resolve,
    feedback_issue_titles_across_schools,
    feedback_item_bureau_reply,
    feedback_item_escalate,
    feedback_item_triage,
    feedback_open_by_category,
    feedback_summary,
)
from visits.models import (
    FEEDBACK_AGE_OVERDUE_DAYS,
    FEEDBACK_AGE_WARNING_DAYS,
    OPEN_FEEDBACK_STATUSES,
    FeedbackCategory,
    FeedbackIssue,
    FeedbackNature,
    FeedbackStatus,
    ReplyMethod,
    Suggestion,
    Visit,
)

PAGE_SIZE = 50
LEDGER_READERS = (Role.SCHOOL_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
COUNTY_READERS = (Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
STATUS_OPEN = "open_all"
FEEDBACK_TITLE = "「万名教师大家访」问题反馈台账"


def _styled(form: forms.Form) -> None:
    for field in form.fields.values():
        if isinstance(field.widget, forms.CheckboxInput):
            continue
        is_select = isinstance(field.widget, forms.Select)
        field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"


class FeedbackFilterForm(forms.Form):
    school = forms.ModelChoiceField(
        label="学校", queryset=School.objects.none(), required=False, empty_label="全部学校"
    )
    school_class = forms.ModelChoiceField(
        label="班级", queryset=SchoolClass.objects.none(), required=False, empty_label="全部班级"
    )
    teacher = forms.ModelChoiceField(
        label="家访教师", queryset=User.objects.none(), required=False, empty_label="全部教师"
    )
    status = forms.ChoiceField(
        label="状态",
        choices=[("", "全部状态"), (STATUS_OPEN, "未办结（待处理、处理中、上报）"), *FeedbackStatus.choices],
        required=False,
    )
    category = forms.ChoiceField(
        label="类别", choices=[("", "全部类别"), *FeedbackCategory.choices, ("none", "未分类")], required=False
    )
    nature = forms.ChoiceField(label="性质", choices=[("", "共性和个性"), *FeedbackNature.choices], required=False)
    age = forms.ChoiceField(
        label="时长",
        choices=[
            ("", "不限"),
            (str(FEEDBACK_AGE_WARNING_DAYS), f"未办结超过 {FEEDBACK_AGE_WARNING_DAYS} 天"),
            (str(FEEDBACK_AGE_OVERDUE_DAYS), f"未办结超过 {FEEDBACK_AGE_OVERDUE_DAYS} 天"),
        ],
        required=False,
    )
    date_from = forms.DateField(label="提出日期自", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="至", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, user: User):
        super().__init__(data)
        if user.role == Role.SCHOOL_ADMIN:
            del self.fields["school"]
            self.fields["school_class"].queryset = SchoolClass.objects.filter(
                school_id=user.school_id, school_year=SchoolYear.current()
            ).order_by("grade", "number")
            self.fields["teacher"].queryset = User.objects.filter(school_id=user.school_id).order_by("real_name", "pk")
        else:
            self.fields["school"].queryset = School.objects.visible_to(user).order_by("zone__code", "code")
            del self.fields["school_class"]
            del self.fields["teacher"]
        _styled(self)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("开始日期不能晚于结束日期。")
        return data

    def apply(self, items: QuerySet[Suggestion]) -> QuerySet[Suggestion]:
        if not self.is_valid():
            return items.none()
        data = self.cleaned_data
        if data.get("school"):
            items = items.filter(school=data["school"])
        if data.get("school_class"):
            pupils = Student.objects.filter(school_class=data["school_class"]).values("pk")
            visits = Visit.students.through.objects.filter(student_id__in=pupils)
            items = items.filter(visit_id__in=visits.values("visit_id"))
        if data.get("teacher"):
            items = items.filter(visit__lead_teacher=data["teacher"])
        status = data.get("status")
        if status == STATUS_OPEN:
            items = items.open()
        elif status:
            items = items.filter(status=status)
        if data.get("category") == "none":
            items = items.filter(category="")
        elif data.get("category"):
            items = items.filter(category=data["category"])
        if data.get("nature"):
            items = items.filter(nature=data["nature"])
        if data.get("age"):
            limit = timezone.localdate() - datetime.timedelta(days=int(data["age"]))
            items = items.open().filter(raised_on__lt=limit)
        if data.get("date_from"):
            items = items.filter(raised_on__gte=data["date_from"])
        if data.get("date_to"):
            items = items.filter(raised_on__lte=data["date_to"])
        return items


def _ledger_items(user: User) -> QuerySet[Suggestion]:
    return Suggestion.objects.visible_to(user)


def _with_list_relations(items: QuerySet[Suggestion]) -> QuerySet[Suggestion]:
    return items.select_related("school", "handler", "issue", "visit__lead_teacher").prefetch_related(
        Prefetch("visit__students", queryset=Student.objects.select_related("school_class").order_by("name", "pk"))
    )


def _open_first(items: QuerySet[Suggestion]) -> QuerySet[Suggestion]:
    """Open items first, oldest first among them; then the rest, newest first."""
    return items.annotate(
        closed_rank=Case(
            When(status__in=OPEN_FEEDBACK_STATUSES, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
    ).order_by("closed_rank", "raised_on", "pk")


@require_roles(*LEDGER_READERS)
def feedback_ledger(request: HttpRequest) -> HttpResponse:
    """The ledger: its open items and their age at the top, the categories × statuses, the common
    problems, then the items (open ones first, oldest first), filterable and paginated."""
    user = request.user
    items = _ledger_items(user)
    form = FeedbackFilterForm(request.GET, user=user)
    page = Paginator(_with_list_relations(_open_first(form.apply(items))), PAGE_SIZE).get_page(request.GET.get("page"))
    issues = (
        FeedbackIssue.objects.visible_to(user)
        .select_related("school")
        .annotate(item_count=Count("items"))
        .order_by("status", "-item_count", "title")[:20]
    )
    return render(
        request,
        "ledgers/feedback_ledger.html",
        {
            "form": form,
            "page": page,
            "summary": feedback_summary(items),
            "table": feedback_by_category_and_status(items),
            "issues": issues,
            "works_with": works_with_students(user),
            "is_school_admin": user.role == Role.SCHOOL_ADMIN,
            "open_issues": FeedbackIssue.objects.visible_to(user).filter(status=FeedbackIssue.Status.OPEN)
            if user.role == Role.SCHOOL_ADMIN
            else [],
            "categories": FeedbackCategory.choices,
            "warning_days": FEEDBACK_AGE_WARNING_DAYS,
            "overdue_days": FEEDBACK_AGE_OVERDUE_DAYS,
        },
    )


class TriageForm(forms.Form):
    category = forms.ChoiceField(
        label="问题类别", choices=[("", "（未分类）"), *FeedbackCategory.choices], required=False
    )
    nature = forms.ChoiceField(label="问题性质", choices=[("", "（未定）"), *FeedbackNature.choices], required=False)
    handler = forms.ModelChoiceField(
        label="经办人", queryset=User.objects.none(), required=False, empty_label="（未指定）"
    )
    status = forms.ChoiceField(label="处理状态", choices=[])
    family_reply = forms.CharField(
        label="答复家长", max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    reply_method = forms.ChoiceField(
        label="答复方式", choices=[("", "（未答复）"), *ReplyMethod.choices], required=False
    )
    replied_on = forms.DateField(label="答复日期", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, item: Suggestion, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["handler"].queryset = User.objects.filter(school_id=item.school_id, is_active=True).order_by(
            "real_name", "pk"
        )
        statuses = [*TRIAGE_STATUSES] + ([FeedbackStatus.ON_SITE] if item.status == FeedbackStatus.ON_SITE else [])
        self.fields["status"].choices = [(status.value, status.label) for status in statuses]
        _styled(self)


class EscalateForm(forms.Form):
    note = forms.CharField(label="上报说明", max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


class BureauReplyForm(forms.Form):
    reply = forms.CharField(label="教育局答复", max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))
    close = forms.BooleanField(label="答复后办结（已解决）", required=False)


def _item(request: HttpRequest, public_id) -> Suggestion:
    return get_object_for_user(
        Suggestion.objects.select_related(
            "school", "handler", "issue", "visit__lead_teacher", "bureau_replied_by"
        ).prefetch_related(
            Prefetch("visit__students", queryset=Student.objects.select_related("school_class").order_by("name", "pk"))
        ),
        request,
        public_id=public_id,
    )


def _item_page(request: HttpRequest, item: Suggestion, *, triage=None, escalate=None, reply=None) -> HttpResponse:
    user = request.user
    is_school_admin = user.role == Role.SCHOOL_ADMIN
    if is_school_admin and triage is None:
        triage = TriageForm(
            item=item,
            initial={
                "category": item.category,
                "nature": item.nature,
                "handler": item.handler_id,
                "status": item.status,
                "family_reply": item.family_reply,
                "reply_method": item.reply_method,
                "replied_on": item.replied_on,
            },
        )
    works_with = works_with_students(user)
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type="visits.Suggestion",
        object_id=str(item.public_id),
        detail={"page": "feedback_item", "full": works_with},
    )
    return render(
        request,
        "ledgers/feedback_item.html",
        {
            "item": item,
            "text": item.text if works_with else redact_contacts(item.text),
            "works_with": works_with,
            "is_school_admin": is_school_admin,
            "can_triage": is_school_admin and item.status not in (FeedbackStatus.ESCALATED, FeedbackStatus.WITHDRAWN),
            "can_escalate": is_school_admin and item.status in (FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS),
            "can_reply": user.role in (Role.INSPECTOR, Role.BUREAU_ADMIN) and item.status == FeedbackStatus.ESCALATED,
            "triage": triage,
            "escalate": escalate or EscalateForm(),
            "reply_form": reply or BureauReplyForm(),
            "changes": item.changes.select_related("changed_by"),
        },
    )


@require_roles(*LEDGER_READERS)
def feedback_item(request: HttpRequest, public_id) -> HttpResponse:
    """One item: the family's words, the visit it came from, its triage, the bureau's reply and its
    history (who changed what, when)."""
    return _item_page(request, _item(request, public_id))


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            for message in errors:
                form.add_error(name if name in form.fields else None, message)
    else:
        form.add_error(None, error)


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def feedback_item_triage_view(request: HttpRequest, public_id) -> HttpResponse:
    item = _item(request, public_id)
    form = TriageForm(request.POST, item=item)
    if form.is_valid():
        data = form.cleaned_data
        try:
            feedback_item_triage(
                item=item,
                triage=Triage(
                    category=data["category"],
                    nature=data["nature"],
                    handler=data["handler"],
                    status=data["status"],
                    family_reply=data["family_reply"],
                    reply_method=data["reply_method"],
                    replied_on=data["replied_on"],
                ),
                acting_user=request.user,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "已保存处理情况。")
            return redirect("feedback_item", public_id=item.public_id)
    return _item_page(request, item, triage=form)


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def feedback_item_escalate_view(request: HttpRequest, public_id) -> HttpResponse:
    item = _item(request, public_id)
    form = EscalateForm(request.POST)
    if form.is_valid():
        try:
            feedback_item_escalate(item=item, note=form.cleaned_data["note"], acting_user=request.user)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "已上报教育局。")
            return redirect("feedback_item", public_id=item.public_id)
    return _item_page(request, item, escalate=form)


@require_POST
@require_roles(Role.INSPECTOR, Role.BUREAU_ADMIN)
def feedback_item_reply_view(request: HttpRequest, public_id) -> HttpResponse:
    item = _item(request, public_id)
    form = BureauReplyForm(request.POST)
    if form.is_valid():
        try:
            feedback_item_bureau_reply(
                item=item, reply=form.cleaned_data["reply"], close=form.cleaned_data["close"], acting_user=request.user
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "已答复学校。")
            return redirect("feedback_item", public_id=item.public_id)
    return _item_page(request, item, reply=form)


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def feedback_group(request: HttpRequest) -> HttpResponse:
    """Group the checked items under a new common problem (title + category) or an open one."""
    items = list(
        Suggestion.objects.visible_to(request.user).filter(public_id__in=_uuids(request.POST.getlist("items")))
    )
    if not items:
        messages.error(request, "请先勾选要归并的意见。")
        return redirect("feedback_ledger")
    existing = request.POST.get("issue", "")
    try:
        if existing:
            issue = get_object_for_user(FeedbackIssue, request, public_id=existing)
            feedback_issue_add_items(issue=issue, items=items, acting_user=request.user)
        else:
            issue = feedback_issue_create(
                school=request.user.school,
                title=request.POST.get("title", ""),
                category=request.POST.get("category", ""),
                items=items,
                acting_user=request.user,
            )
    except ValidationError as error:
        messages.error(request, "；".join(error.messages))
        return redirect("feedback_ledger")
    messages.success(request, f"已把 {len(items)} 条意见归入共性问题「{issue.title}」。")
    return redirect("feedback_issue", public_id=issue.public_id)


def _uuids(values: list[str]) -> list[str]:
    result = []
    for value in values[:200]:
        try:
            result.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return result


class ResolveForm(forms.Form):
    resolution = forms.CharField(
        label="处理结果（作为给家长的答复）", max_length=1000, widget=forms.Textarea(attrs={"rows": 3})
    )
    reply_method = forms.ChoiceField(label="答复方式", choices=ReplyMethod.choices)


@require_roles(*LEDGER_READERS)
def feedback_issue(request: HttpRequest, public_id) -> HttpResponse:
    """A common problem with its items; the school admin resolves it once for all of them."""
    issue = get_object_for_user(FeedbackIssue.objects.select_related("school"), request, public_id=public_id)
    return _issue_page(request, issue)


def _issue_page(request: HttpRequest, issue: FeedbackIssue, resolve_form=None) -> HttpResponse:
    items = _with_list_relations(issue.items.all().order_by("raised_on", "pk"))
    form = resolve_form or ResolveForm()
    _styled(form)
    return render(
        request,
        "ledgers/feedback_issue.html",
        {
            "issue": issue,
            "items": items,
            "form": form,
            "works_with": works_with_students(request.user),
            "can_resolve": request.user.role == Role.SCHOOL_ADMIN and issue.status == FeedbackIssue.Status.OPEN,
        },
    )


@require_POST
@require_roles(Role.SCHOOL_ADMIN)
def feedback_issue_resolve_view(request: HttpRequest, public_id) -> HttpResponse:
    issue = get_object_for_user(FeedbackIssue, request, public_id=public_id)
    form = ResolveForm(request.POST)
    if form.is_valid():
        try:
            feedback_issue_resolve(
                issue=issue,
                resolution=form.cleaned_data["resolution"],
                reply_method=form.cleaned_data["reply_method"],
                acting_user=request.user,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "共性问题已解决，其下的意见已一并办结。")
            return redirect("feedback_issue", public_id=issue.public_id)
    return _issue_page(request, issue, resolve_form=form)


@require_roles(*COUNTY_READERS)
def feedback_county(request: HttpRequest) -> HttpResponse:
    """Problems across schools: open items by category (one row per category with its schools and
    items), common problems named alike in several schools, and the escalated items — an
    inspector's 包联 schools first."""
    user = request.user
    items = _ledger_items(user)
    escalated = items.filter(status=FeedbackStatus.ESCALATED)
    if user.role == Role.INSPECTOR:
        assigned = InspectorAssignment.objects.filter(inspector=user, school_id=OuterRef("school_id"))
        escalated = escalated.annotate(
            assigned=Case(
                When(Exists(assigned), then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        ).order_by("assigned", "escalated_at", "pk")
    else:
        escalated = escalated.order_by("escalated_at", "pk")
    page = Paginator(_with_list_relations(escalated), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "ledgers/feedback_county.html",
        {
            "summary": feedback_summary(items),
            "categories": feedback_open_by_category(items),
            "titles": feedback_issue_titles_across_schools(FeedbackIssue.objects.visible_to(user)),
            "page": page,
        },
    )


EXPORT_HEADER = [
    "学校",
    "提出日期",
    "家访教师",
    "班级",
    "家长意见建议",
    "现场答复",
    "问题类别",
    "性质",
    "共性问题",
    "状态",
    "经办人",
    "答复家长",
    "答复方式",
    "答复日期",
    "办结日期",
    "上报说明",
    "教育局答复",
    "撤回原因",
    "未办结天数",
]
EXPORT_WIDTHS = [16, 11, 9, 12, 36, 24, 8, 6, 14, 9, 8, 30, 9, 11, 11, 24, 24, 16, 8]


def feedback_export_rows(items: QuerySet[Suggestion], *, works_with: bool):
    """Header, then one row per item (open ones first, oldest first); the family's words and
    replies with typed numbers masked unless ``works_with`` (the school admin's full export). Read
    in chunks of 2000 with the visit's students prefetched per chunk."""
    yield EXPORT_HEADER
    show = (lambda text: text) if works_with else redact_contacts
    today = timezone.localdate()
    for item in _with_list_relations(_open_first(items)).iterator(chunk_size=2000):
        classes = "、".join(dict.fromkeys(s.school_class.name for s in item.visit.students.all() if s.school_class))
        yield [
            item.school.name,
            item.raised_on,
            item.visit.lead_teacher.display_name,
            classes,
            show(item.text),
            show(item.reply),
            item.get_category_display(),
            item.get_nature_display(),
            item.issue.title if item.issue else "",
            item.get_status_display(),
            item.handler.display_name if item.handler else "",
            show(item.family_reply),
            item.get_reply_method_display(),
            item.replied_on,
            item.resolved_on,
            show(item.escalation_note),
            item.bureau_reply,
            item.withdrawn_reason,
            (today - item.raised_on).days if item.is_open and item.raised_on else "",
        ]


@require_roles(*LEDGER_READERS)
def feedback_export(request: HttpRequest) -> HttpResponse:
    """The filtered ledger as XLSX in the 台账 layout, with the category × status table as a second
    sheet; audited."""
    user = request.user
    form = FeedbackFilterForm(request.GET, user=user)
    items = form.apply(_ledger_items(user))
    # Numbers typed into the family's words are masked in an export (DESIGN §8) unless the school
    # admin explicitly asks for the full one (?full=1), marked ``full`` in its audit row.
    full = request.GET.get("full") == "1" and user.role == Role.SCHOOL_ADMIN
    unit = user.school.name if user.school_id else (user.zone.name if user.zone_id else "全县")
    table = feedback_by_category_and_status(items)
    export = write_ledger_workbook(
        [
            LedgerSheet(
                name="问题反馈台账",
                rows=feedback_export_rows(items, works_with=full),
                widths=EXPORT_WIDTHS,
            ),
            LedgerSheet(name="按类别和状态", rows=iter(table), widths=[14] + [10] * (len(table[0]) - 1)),
        ],
        heading=LedgerHeading(title=FEEDBACK_TITLE, unit=unit, filled_by=user.display_name, phone=user.phone),
        filename=f"问题反馈台账_{unit}_{timezone.localdate():%Y%m%d}.xlsx",
    )
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="visits.Suggestion",
        detail={
            "ledger": "feedback",
            "filters": request.GET.dict(),
            "rows": export.rows,
            "format": "xlsx",
            "full": full,
        },
    )
    return export.response()
