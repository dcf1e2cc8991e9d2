"""The feedback ledger (问题反馈台账, DESIGN §4, §6): writes and reads of its items.

An item is a ``Suggestion`` of a submitted visit. The visit's author creates and corrects it through
the visit form (``feedback_items_sync``, called by the visit service in its transaction); the school
admin triages it, groups common problems into a ``FeedbackIssue`` and escalates what the school
cannot solve; the bureau's inspectors reply and close escalated items. Every change is kept as a
``FeedbackChange`` (who, when, before → after) and written to the audit log. The family's words
(``Suggestion.text``) are never changed by a triage write.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Min, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from schools.models import BUREAU_ROLES, AuditEvent, InspectorAssignment, Role, School, User
from schools.services import audit_event_build
from visits.models import (
    FEEDBACK_AGE_OVERDUE_DAYS,
    FEEDBACK_AGE_WARNING_DAYS,
    OPEN_FEEDBACK_STATUSES,
    FeedbackCategory,
    FeedbackChange,
    FeedbackIssue,
    FeedbackNature,
    FeedbackStatus,
    Notification,
    ReplyMethod,
    Suggestion,
    Visit,
)

UNCATEGORISED = "未分类"
# The history's name (``FeedbackChange.action``) of each of the school's and the bureau's writes.
TRIAGE_ACTION = "学校处理"
ESCALATE_ACTION = "上报教育局"
ISSUE_ADD_ACTION = "归入共性问题"
ISSUE_RESOLVE_ACTION = "共性问题办结"
# What the school may set an item to when triaging; 上报教育局 has its own write, 已撤回 is the teacher's.
TRIAGE_STATUSES = (FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS, FeedbackStatus.RESOLVED)


def _label(choices, value) -> str:
    if value in (None, ""):
        return ""
    return str(choices(value).label)


# Field → (label, how to show a value) for an item's change history.
_TRACKED = {
    "status": ("状态", lambda v: _label(FeedbackStatus, v)),
    "category": ("问题类别", lambda v: _label(FeedbackCategory, v)),
    "nature": ("问题性质", lambda v: _label(FeedbackNature, v)),
    "handler": ("经办人", lambda v: v.display_name if v else ""),
    "issue": ("共性问题", lambda v: v.title if v else ""),
    "family_reply": ("答复家长", str),
    "reply_method": ("答复方式", lambda v: _label(ReplyMethod, v)),
    "replied_on": ("答复日期", lambda v: v.isoformat() if v else ""),
    "resolved_on": ("办结日期", lambda v: v.isoformat() if v else ""),
    "escalation_note": ("上报说明", str),
    "bureau_reply": ("教育局答复", str),
    "text": ("家长意见建议", str),
    "reply": ("现场答复", str),
    "withdrawn_reason": ("撤回原因", str),
}


def feedback_item_snapshot(item: Suggestion) -> dict:
    """The item's tracked fields, to compare with after a change (``feedback_history_rows``)."""
    return {name: getattr(item, name) for name in _TRACKED}


def feedback_history_rows(
    item: Suggestion, before: dict | None, *, action: str, acting_user: User | None, audit: bool = True
) -> list[FeedbackChange | AuditEvent]:
    """The rows a change to the (saved) item leaves, unsaved: its history row (none when nothing
    changed) and the audit row. The visit's author's changes are audited once, by the visit's own
    row (``audit=False`` here). The services save them one by one (``_record``); the demo data
    (``visits.feedback_demo``) writes many at once."""
    after = feedback_item_snapshot(item)
    changes = {}
    for name, (label, show) in _TRACKED.items():
        old = before.get(name) if before is not None else None
        if old != after[name] and not (before is None and after[name] in (None, "")):
            changes[label] = [show(old) if before is not None else "", show(after[name])]
    if before is not None and not changes:
        return []
    rows: list[FeedbackChange | AuditEvent] = [
        FeedbackChange(item=item, changed_by=acting_user, action=action, changes=changes)
    ]
    if audit:
        rows.append(
            audit_event_build(
                action=AuditEvent.Action.CHANGE,
                user=acting_user,
                object_type="visits.Suggestion",
                object_id=str(item.pk),
                detail={"action": action, "status": item.status},
            )
        )
    return rows


def _record(
    item: Suggestion, before: dict | None, *, action: str, acting_user: User | None, audit: bool = True
) -> None:
    """Save the item's history row and audit row (``feedback_history_rows``)."""
    for row in feedback_history_rows(item, before, action=action, acting_user=acting_user, audit=audit):
        row.save()


# --- the visit's author: items created and corrected with the visit ----------------------------


def feedback_items_sync(*, visit: Visit, items: list[dict], acting_user: User) -> None:
    """Make the visit's items match the form's rows, in place, inside the visit's transaction.

    ``items``: ``[{"id": int | None, "text", "reply", "to_school", "withdraw_reason"}]`` in the
    form's order. A row with the id of one of the visit's items updates it; a row without an id adds
    one; an item with no row is removed only if the school has not started on it. An item the school
    is handling (``Suggestion.is_handled``) keeps the family's words and the teacher's reply: it can
    only be withdrawn with a reason, and stays in the ledger as 已撤回.

    Raises ``ValidationError({"suggestions": [...]})`` naming the row (第 N 条) that breaks a rule;
    the caller's transaction then leaves nothing changed."""
    existing = {item.pk: item for item in Suggestion.objects.select_for_update().filter(visit=visit)}
    raised_on = timezone.localdate(visit.visited_at)
    errors: list[str] = []
    kept: set[int] = set()
    for number, row in enumerate(items, start=1):
        item_id = row.get("id")
        reason = (row.get("withdraw_reason") or "").strip()
        if item_id is None:
            if reason:
                errors.append(f"第 {number} 条：新填写的意见不需要撤回，直接删除内容即可。")
                continue
            item = Suggestion(
                visit=visit,
                school_id=visit.school_id,
                text=row["text"],
                reply=row.get("reply", ""),
                to_school=bool(row.get("to_school")),
                raised_on=raised_on,
                status=FeedbackStatus.OPEN if row.get("to_school") else FeedbackStatus.ON_SITE,
            )
            item.full_clean(exclude=["visit", "school", "handler", "issue"])
            item.save()
            _record(item, None, action="提出", acting_user=acting_user, audit=False)
            continue
        item = existing.get(item_id)
        if item is None:
            errors.append(f"第 {number} 条：这条意见不属于本条家访记录。")
            continue
        kept.add(item_id)
        before = feedback_item_snapshot(item)
        if item.status == FeedbackStatus.WITHDRAWN:
            if row["text"] != item.text or row.get("reply", "") != item.reply:
                errors.append(f"第 {number} 条：这条意见已撤回，不能再修改。")
            continue
        if reason:
            if not item.is_handled:
                errors.append(f"第 {number} 条：学校尚未处理的意见直接删除内容即可，不需要撤回。")
                continue
            item.status = FeedbackStatus.WITHDRAWN
            item.withdrawn_reason = reason[:300]
            item.withdrawn_at = timezone.now()
            item.save()
            _record(item, before, action="撤回", acting_user=acting_user, audit=False)
            continue
        if item.is_handled:
            changed = (row["text"], row.get("reply", ""), bool(row.get("to_school"))) != (
                item.text,
                item.reply,
                item.to_school,
            )
            if changed:
                errors.append(
                    f"第 {number} 条：学校已在处理这条意见（{item.get_status_display()}），不能修改；"
                    "确需撤回的，请填写撤回原因。"
                )
            if item.raised_on != raised_on:
                item.raised_on = raised_on
                item.save(update_fields=["raised_on", "updated_at"])
            continue
        item.text = row["text"]
        item.reply = row.get("reply", "")
        item.to_school = bool(row.get("to_school"))
        item.status = FeedbackStatus.OPEN if item.to_school else FeedbackStatus.ON_SITE
        item.raised_on = raised_on
        item.full_clean(exclude=["visit", "school", "handler", "issue"])
        item.save()
        _record(item, before, action="教师修改", acting_user=acting_user, audit=False)
    for item_id, item in existing.items():
        if item_id in kept:
            continue
        if item.is_handled or item.status == FeedbackStatus.WITHDRAWN:
            errors.append(f"「{item.text[:20]}」：学校已在处理这条意见，不能从记录中删除，只能填写撤回原因后撤回。")
            continue
        item.delete()  # never handled by the school; the visit's revision keeps its words
    if errors:
        raise ValidationError({"suggestions": errors})
    Suggestion.objects.filter(visit=visit).update(visit_submitted=visit.is_submitted)


# --- the school admin: triage, common problems, escalation -------------------------------------


@dataclass
class Triage:
    """What the triage form carries, already parsed."""

    category: str
    nature: str
    handler: User | None
    status: str
    family_reply: str = ""
    reply_method: str = ""
    replied_on: datetime.date | None = None


def feedback_item_triage(*, item: Suggestion, triage: Triage, acting_user: User) -> Suggestion:
    """The school admin sets the item's category, nature, handler, status and the reply to the
    family. Never touches the family's words. Raises ``ValidationError`` (field → message) when the
    item is the bureau's or withdrawn, the handler is not the school's, or a resolved item has no
    reply to the family."""
    with transaction.atomic():
        item = Suggestion.objects.select_for_update().get(pk=item.pk)
        _require_school_admin(item, acting_user)
        errors: dict[str, str] = {}
        if item.status in (FeedbackStatus.ESCALATED, FeedbackStatus.WITHDRAWN):
            errors["status"] = f"这条意见{item.get_status_display()}，学校不能再改它的处理状态。"
        allowed = [*TRIAGE_STATUSES]
        if item.status == FeedbackStatus.ON_SITE:
            allowed.append(FeedbackStatus.ON_SITE)
        if triage.status not in allowed:
            errors["status"] = "请选择处理状态（待处理、处理中或已解决）。"
        if triage.category and triage.category not in FeedbackCategory.values:
            errors["category"] = "请选择问题类别。"
        if triage.nature and triage.nature not in FeedbackNature.values:
            errors["nature"] = "请选择共性或个性。"
        if triage.handler is not None and (triage.handler.school_id != item.school_id or not triage.handler.is_active):
            errors["handler"] = "经办人必须是本校在职教职工。"
        if triage.status == FeedbackStatus.RESOLVED and not triage.family_reply.strip():
            errors["family_reply"] = "办结前请填写给家长的答复。"
        if triage.family_reply.strip() and not triage.reply_method:
            errors["reply_method"] = "请选择答复方式。"
        if errors:
            raise ValidationError(errors)
        before = feedback_item_snapshot(item)
        feedback_item_triage_change(item, triage, today=timezone.localdate())
        item.full_clean(exclude=["visit", "school", "handler", "issue"])
        item.save()
        _record(item, before, action=TRIAGE_ACTION, acting_user=acting_user)
    return item


def feedback_item_triage_change(item: Suggestion, triage: Triage, *, today: datetime.date) -> None:
    """What a triage (already checked) changes on the item, in memory: ``feedback_item_triage``'s
    rule, shared with the demo data."""
    item.category = triage.category
    item.nature = triage.nature
    item.handler = triage.handler
    item.family_reply = triage.family_reply.strip()
    item.reply_method = triage.reply_method
    item.replied_on = triage.replied_on or (today if item.family_reply and not item.replied_on else item.replied_on)
    if triage.status != item.status:
        item.status = triage.status
        item.resolved_on = today if triage.status == FeedbackStatus.RESOLVED else None


def feedback_item_escalate(*, item: Suggestion, note: str, acting_user: User) -> Suggestion:
    """上报教育局: an open item the school cannot solve goes to the bureau with a note; the
    school's inspectors (包联领导) are notified. Raises ``ValidationError`` when the item is not
    open at the school or the note is empty."""
    note = note.strip()
    with transaction.atomic():
        item = Suggestion.objects.select_for_update(of=("self",)).select_related("school").get(pk=item.pk)
        _require_school_admin(item, acting_user)
        if item.status not in (FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS):
            message = f"只有待处理或处理中的意见可以上报（这条是「{item.get_status_display()}」）。"
            raise ValidationError({"note": message})
        if not note:
            raise ValidationError({"note": "请填写上报说明：学校做了什么，为什么需要教育局处理。"})
        before = feedback_item_snapshot(item)
        feedback_item_escalate_change(item, note, now=timezone.now())
        item.save()
        _record(item, before, action=ESCALATE_ACTION, acting_user=acting_user)
        inspectors = InspectorAssignment.objects.filter(school_id=item.school_id).values_list("inspector_id", flat=True)
        Notification.objects.bulk_create(
            feedback_escalation_notifications(item, school_name=item.school.name, inspector_ids=inspectors)
        )
    return item


def feedback_item_escalate_change(item: Suggestion, note: str, *, now: datetime.datetime) -> None:
    """What escalating the item (already checked) changes on it, in memory."""
    item.status = FeedbackStatus.ESCALATED
    item.escalation_note = note[:1000]
    item.escalated_at = now


def feedback_escalation_notifications(
    item: Suggestion, *, school_name: str, inspector_ids: Iterable[int]
) -> list[Notification]:
    """The notices (unsaved) an escalated item sends to the school's inspectors (包联领导)."""
    link = reverse("feedback_item", args=[item.public_id])
    return [
        Notification(
            user_id=user_id, title="学校上报家长意见", body=f"{school_name}上报了一条家长意见，请答复。", link=link
        )
        for user_id in inspector_ids
    ]


def feedback_item_bureau_reply(*, item: Suggestion, reply: str, close: bool, acting_user: User) -> Suggestion:
    """An inspector or the bureau answers an escalated item and may close it (已解决); the school's
    admins are notified and see the reply on the item. Raises ``ValidationError`` when the item is
    not escalated or the reply is empty."""
    reply = reply.strip()
    with transaction.atomic():
        item = Suggestion.objects.select_for_update().get(pk=item.pk)
        if acting_user.role not in BUREAU_ROLES:
            raise ValidationError("只有教育局可以答复上报的意见。")
        if item.status != FeedbackStatus.ESCALATED:
            raise ValidationError({"reply": "这条意见没有上报教育局，或已经办结。"})
        if not reply:
            raise ValidationError({"reply": "请填写答复内容。"})
        before = feedback_item_snapshot(item)
        feedback_item_bureau_reply_change(item, reply, close=close, acting_user=acting_user, now=timezone.now())
        item.save()
        _record(item, before, action=feedback_bureau_reply_action(close), acting_user=acting_user)
        admins = User.objects.filter(school_id=item.school_id, role=Role.SCHOOL_ADMIN, is_active=True)
        Notification.objects.bulk_create(
            feedback_bureau_reply_notifications(item, reply, admin_ids=admins.values_list("pk", flat=True))
        )
    return item


def feedback_item_bureau_reply_change(
    item: Suggestion, reply: str, *, close: bool, acting_user: User, now: datetime.datetime
) -> None:
    """What the bureau's reply (already checked) changes on the item, in memory."""
    item.bureau_reply = reply[:1000]
    item.bureau_replied_by = acting_user
    item.bureau_replied_at = now
    if close:
        item.status = FeedbackStatus.RESOLVED
        item.resolved_on = timezone.localdate(now)


def feedback_bureau_reply_action(close: bool) -> str:
    return "教育局答复并办结" if close else "教育局答复"


def feedback_bureau_reply_notifications(
    item: Suggestion, reply: str, *, admin_ids: Iterable[int]
) -> list[Notification]:
    """The notices (unsaved) the bureau's reply sends to the school's active admins."""
    link = reverse("feedback_item", args=[item.public_id])
    return [
        Notification(user_id=user_id, title="教育局答复了上报的家长意见", body=reply[:200], link=link)
        for user_id in admin_ids
    ]


def feedback_issue_create(
    *, school: School, title: str, category: str, items: Iterable[Suggestion], acting_user: User
) -> FeedbackIssue:
    """Group open items of one school under a common problem (共性问题); the items become 共性 of
    the issue's category. Raises ``ValidationError`` for an empty title, a title the school already
    uses, or an item of another school or not open."""
    title = title.strip()
    with transaction.atomic():
        if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != school.pk:
            raise ValidationError("只有本校管理员可以归并共性问题。")
        if not title:
            raise ValidationError({"title": "请填写共性问题的名称，如「校门口接送拥堵」。"})
        if category not in FeedbackCategory.values:
            raise ValidationError({"category": "请选择问题类别。"})
        if FeedbackIssue.objects.filter(school=school, title=title).exists():
            raise ValidationError({"title": f"本校已有共性问题「{title}」，请把意见归入它。"})
        issue = FeedbackIssue(school=school, title=title, category=category, created_by=acting_user)
        issue.full_clean(exclude=["handler", "created_by"])
        issue.save()
        feedback_issue_add_items(issue=issue, items=items, acting_user=acting_user)
    return issue


def feedback_issue_add_items(*, issue: FeedbackIssue, items: Iterable[Suggestion], acting_user: User) -> int:
    """Put open items of the issue's school under it; returns how many. Raises ``ValidationError``
    when an item is another school's, not open, or the issue is resolved."""
    with transaction.atomic():
        if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != issue.school_id:
            raise ValidationError("只有本校管理员可以归并共性问题。")
        if issue.status == FeedbackIssue.Status.RESOLVED:
            raise ValidationError("这个共性问题已解决，不能再归入意见。")
        ids = [item.pk for item in items]
        rows = list(Suggestion.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        if len(rows) != len(set(ids)) or any(row.school_id != issue.school_id for row in rows):
            raise ValidationError("所选意见不属于本校。")
        closed = [row for row in rows if row.status not in (FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS)]
        if closed:
            first = closed[0]
            raise ValidationError(f"只能归并待处理或处理中的意见；「{first.text[:20]}」{first.get_status_display()}。")
        for row in rows:
            before = feedback_item_snapshot(row)
            feedback_issue_item_add_change(row, issue)
            row.save()
            _record(row, before, action=ISSUE_ADD_ACTION, acting_user=acting_user)
    return len(rows)


def feedback_issue_item_add_change(item: Suggestion, issue: FeedbackIssue) -> None:
    """What putting an open item under the issue changes on the item, in memory."""
    item.issue = issue
    item.category = issue.category
    item.nature = FeedbackNature.COMMON
    if item.status == FeedbackStatus.OPEN:
        item.status = FeedbackStatus.IN_PROGRESS


def feedback_issue_resolve(
    *, issue: FeedbackIssue, resolution: str, reply_method: str, acting_user: User
) -> FeedbackIssue:
    """Resolve a common problem once: each of its items still at the school becomes 已解决 with the
    resolution as the reply to the family (escalated ones stay with the bureau). Raises
    ``ValidationError`` for an empty resolution or a missing reply method."""
    resolution = resolution.strip()
    with transaction.atomic():
        issue = FeedbackIssue.objects.select_for_update().get(pk=issue.pk)
        if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != issue.school_id:
            raise ValidationError("只有本校管理员可以办结共性问题。")
        if issue.status == FeedbackIssue.Status.RESOLVED:
            raise ValidationError("这个共性问题已经解决。")
        if not resolution:
            raise ValidationError({"resolution": "请填写处理结果，它将作为给家长的答复。"})
        if reply_method not in ReplyMethod.values:
            raise ValidationError({"reply_method": "请选择答复方式。"})
        today = timezone.localdate()
        feedback_issue_resolve_change(issue, resolution, reply_method=reply_method, today=today)
        issue.save()
        for item in issue.items.select_for_update().filter(status__in=ISSUE_RESOLVES):
            before = feedback_item_snapshot(item)
            feedback_issue_item_resolve_change(item, issue)
            item.save()
            _record(item, before, action=ISSUE_RESOLVE_ACTION, acting_user=acting_user)
    return issue


# The items a common problem's resolution closes: those still at the school.
ISSUE_RESOLVES = (FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS)


def feedback_issue_resolve_change(
    issue: FeedbackIssue, resolution: str, *, reply_method: str, today: datetime.date
) -> None:
    """What resolving the common problem (already checked) changes on it, in memory."""
    issue.status = FeedbackIssue.Status.RESOLVED
    issue.resolution = resolution[:1000]
    issue.reply_method = reply_method
    issue.resolved_on = today


def feedback_issue_item_resolve_change(item: Suggestion, issue: FeedbackIssue) -> None:
    """What the resolved issue (``feedback_issue_resolve_change``) changes on one of its items still
    at the school (``ISSUE_RESOLVES``), in memory."""
    item.status = FeedbackStatus.RESOLVED
    item.family_reply = item.family_reply or issue.resolution
    item.reply_method = item.reply_method or issue.reply_method
    item.replied_on = item.replied_on or issue.resolved_on
    item.resolved_on = issue.resolved_on


def _require_school_admin(item: Suggestion, user: User) -> None:
    if user.role != Role.SCHOOL_ADMIN or user.school_id != item.school_id:
        raise ValidationError("只有本校管理员可以处理这条意见。")


# --- reads ------------------------------------------------------------------------------------


def feedback_open_counts(*, school_ids: Iterable[int] | None = None) -> dict[int, int]:
    """{school id: open items} — the statistics' 「待处理家长意见」 (DESIGN §7): items of submitted
    visits whose status is 待处理, 处理中 or 上报教育局. One query. Schools without open items are
    absent (count 0)."""
    items = Suggestion.objects.filter(visit_submitted=True, status__in=OPEN_FEEDBACK_STATUSES)
    if school_ids is not None:
        items = items.filter(school_id__in=list(school_ids))
    return dict(items.order_by().values_list("school_id").annotate(n=Count("pk")))


def feedback_open_counts_by_phase(*, school_ids: Iterable[int], campaign) -> dict[tuple[int, int], int]:
    """{(school id, phase id): open items} of the campaign's visits — the shape of the statistics
    engine's ``_feedback_counts`` (``ledgers.statistics``), so that the engine's 「待处理家长意见」
    counts the ledger's open items (待处理, 处理中, 上报教育局) instead of every item ever passed to the
    school. One query."""
    rows = (
        Suggestion.objects.filter(
            visit_submitted=True,
            status__in=OPEN_FEEDBACK_STATUSES,
            school_id__in=list(school_ids),
            visit__phase__campaign=campaign,
        )
        .values("school_id", "visit__phase_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {(row["school_id"], row["visit__phase_id"]): row["n"] for row in rows}


@dataclass(frozen=True)
class FeedbackSummary:
    open: int
    over_warning: int  # open for more than 7 days
    over_overdue: int  # open for more than 30 days
    oldest_raised_on: datetime.date | None
    escalated: int

    @property
    def oldest_age_days(self) -> int | None:
        if self.oldest_raised_on is None:
            return None
        return (timezone.localdate() - self.oldest_raised_on).days


def feedback_summary(items: QuerySet[Suggestion], *, today: datetime.date | None = None) -> FeedbackSummary:
    """Open items, how many are past 7 and 30 days, the oldest one's date and the escalated ones,
    over ``items`` (already scoped). One query."""
    today = today or timezone.localdate()
    warning = today - datetime.timedelta(days=FEEDBACK_AGE_WARNING_DAYS)
    overdue = today - datetime.timedelta(days=FEEDBACK_AGE_OVERDUE_DAYS)
    figures = items.open().aggregate(
        open=Count("pk"),
        over_warning=Count("pk", filter=Q(raised_on__lt=warning)),
        over_overdue=Count("pk", filter=Q(raised_on__lt=overdue)),
        oldest=Min("raised_on"),
        escalated=Count("pk", filter=Q(status=FeedbackStatus.ESCALATED)),
    )
    return FeedbackSummary(
        open=figures["open"],
        over_warning=figures["over_warning"],
        over_overdue=figures["over_overdue"],
        oldest_raised_on=figures["oldest"],
        escalated=figures["escalated"],
    )


@dataclass(frozen=True)
class CategoryRow:
    code: str
    label: str
    schools: int
    items: int
    over_overdue: int


def feedback_open_by_category(items: QuerySet[Suggestion], *, today: datetime.date | None = None) -> list[CategoryRow]:
    """Open items grouped by category across schools: one row per category with the number of
    schools and items (the bureau's view of common problems), most schools first. One query."""
    today = today or timezone.localdate()
    overdue = today - datetime.timedelta(days=FEEDBACK_AGE_OVERDUE_DAYS)
    rows = (
        items.open()
        .order_by()
        .values("category")
        .annotate(
            schools=Count("school", distinct=True),
            n=Count("pk"),
            over=Count("pk", filter=Q(raised_on__lt=overdue)),
        )
    )
    result = [
        CategoryRow(
            code=row["category"],
            label=_label(FeedbackCategory, row["category"]) or UNCATEGORISED,
            schools=row["schools"],
            items=row["n"],
            over_overdue=row["over"],
        )
        for row in rows
    ]
    # Uncategorised items (not yet triaged) last: they are no problem category of their own.
    return sorted(result, key=lambda row: (row.code == "", -row.schools, -row.items, row.label))


def feedback_issue_titles_across_schools(issues: QuerySet[FeedbackIssue], *, limit: int = 20) -> list[dict]:
    """Common problems that several schools named alike: [{"title", "schools", "items"}], most
    schools first. One query."""
    rows = (
        issues.order_by()
        .values("title")
        .annotate(schools=Count("school", distinct=True), items=Count("items", distinct=True))
        .order_by("-schools", "-items", "title")[:limit]
    )
    return list(rows)


def feedback_by_category_and_status(items: QuerySet[Suggestion]) -> list[list]:
    """Rows for the statistics sheet and the ledger's summary: header then one row per category
    (in the DESIGN's order, 未分类 last) with a count per status and the total. One query."""
    counts: dict[tuple[str, str], int] = {}
    # COUNT(*), not COUNT(id): PostgreSQL answers it from an index on (category, status, raised_on).
    for category, status, n in items.order_by().values_list("category", "status").annotate(n=Count("*")):
        counts[(category, status)] = n
    statuses = list(FeedbackStatus)
    table = [["问题类别", *(str(status.label) for status in statuses), "合计"]]
    for code, label in [*FeedbackCategory.choices, ("", UNCATEGORISED)]:
        figures = [counts.get((code, status.value), 0) for status in statuses]
        if code == "" and not any(figures):
            continue
        table.append([str(label), *figures, sum(figures)])
    totals = [sum(row[index] for row in table[1:]) for index in range(1, len(statuses) + 2)]
    table.append(["合计", *totals])
    return table
