"""Demo data of the feedback ledger (问题反馈台账, issue 11), drawn over the visits that
``visits.demo`` has filed: more of the families' words on those visits, most answered on site, the
rest passed to the school and triaged in realistic shares by the ledger's own rules (so each item
has its history and audit rows as its services would have written them): resolved, in progress,
still open and ageing, escalated to the bureau (some answered); and a few common
problems (校门口接送拥堵, 午餐价格) raised in several schools, grouped by each school, one of them
resolved once for all its items.

Called with one line from ``seed_demo``; deterministic for a seed. City-scale (issue 9): the county
is read in a fixed number of queries whatever its size, every draw is made first, then the services'
changes (``visits.feedback``'s ``*_change`` and ``feedback_history_rows``) are applied in memory and
written at once with ``schools.bulk.rows_write`` (COPY on PostgreSQL)."""

import random
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, models, transaction
from django.utils import timezone

from schools.bulk import rows_write
from schools.models import AuditEvent, InspectorAssignment, Role, School, User
from schools.planner import jit_off
from visits.feedback import (
    ESCALATE_ACTION,
    ISSUE_ADD_ACTION,
    ISSUE_RESOLVE_ACTION,
    ISSUE_RESOLVES,
    TRIAGE_ACTION,
    Triage,
    feedback_bureau_reply_action,
    feedback_bureau_reply_notifications,
    feedback_escalation_notifications,
    feedback_history_rows,
    feedback_issue_item_add_change,
    feedback_issue_item_resolve_change,
    feedback_issue_resolve_change,
    feedback_item_bureau_reply_change,
    feedback_item_escalate_change,
    feedback_item_snapshot,
    feedback_item_triage_change,
)
from visits.models import FeedbackChange, FeedbackIssue, FeedbackStatus, Notification, Suggestion, Visit

# Per school: how many more of the families' words to add to its visits, and of them the share
# passed to the school (the rest answered on site, as most are in practice).
ITEMS_PER_SCHOOL = 24
TO_SCHOOL_SHARE = 0.4
# What becomes of an item passed to the school (the rest stays 待处理, untouched).
RESOLVED_SHARE = 0.4
IN_PROGRESS_SHARE = 0.2
ESCALATED_SHARE = 0.12

# (family's words, category, nature, the school's reply once resolved)
WORDS = (
    ("孩子作业量偏多，经常写到晚上十点。", "teaching", "individual", "已与各科老师统筹作业量，控制在一小时内。"),
    ("希望数学老师多讲讲错题。", "teaching", "individual", "已转达任课教师，每周安排一次错题讲评。"),
    ("希望学校延长课后服务时间。", "management", "common", "下学期起课后服务延长至 18:00。"),
    ("班级群里通知太多，看不过来。", "management", "individual", "已要求班主任每日汇总一次通知。"),
    ("学校围墙有一处破损，担心安全。", "safety", "common", "已报修，本周内修复。"),
    ("资料费收取没有公示明细。", "fees", "common", "已在校门口公示栏和家长群公示明细。"),
    ("希望食堂增加蔬菜品种。", "meals", "common", "食堂已调整菜单，每天两种蔬菜。"),
    ("校车路线能否延伸到我们村？", "transport", "individual", "已向交通运输部门反映，等待答复。"),
    ("孩子最近情绪低落，不愿意上学。", "mental_health", "individual", "心理老师已约谈孩子并与家长沟通。"),
    ("不知道怎么辅导孩子写作文，希望有指导。", "parenting", "individual", "已推荐家长学校作文辅导课。"),
    ("希望多组织亲子活动。", "other", "individual", "学期末将举办亲子运动会。"),
)
# The words ``visits.demo`` writes on visits, as the school would class them.
EARLIER = (
    ("希望学校延长课后服务时间。", "management", "common", "下学期起课后服务延长至 18:00。"),
    ("放学时校门口交通拥堵，担心孩子安全。", "transport", "common", "已协调交警在放学时段执勤。"),
    ("希望食堂增加蔬菜品种。", "meals", "common", "食堂已调整菜单，每天两种蔬菜。"),
    ("孩子作业量有时偏多，晚上写到十点。", "teaching", "individual", "已与各科老师统筹作业量。"),
    ("希望学校多开展心理健康讲座。", "mental_health", "common", "本学期安排两次心理健康讲座。"),
    ("校车路线能否延伸到我们村？", "transport", "individual", "已向交通运输部门反映，等待答复。"),
    ("希望老师多反馈孩子在校表现。", "teaching", "individual", "班主任每周通过微信反馈。"),
)
# Common problems that many families in several schools raise.
GATE = ("放学时校门口接送车辆拥堵，孩子过马路不安全。", "transport")
GATE_TITLE = "校门口接送拥堵"
LUNCH = ("午餐价格比去年涨了，分量却少了。", "fees")
LUNCH_TITLE = "午餐价格"
ON_SITE_REPLY = "已现场解释说明，家长表示理解。"
REPLY_METHODS = ("phone", "in_person", "wechat", "written")
LUNCH_RESOLUTION = "经核算，午餐标准按物价部门核定执行，已增加每份菜量并公示食谱。"
ESCALATION_NOTE = "涉及校外部门，学校无法单独解决，请教育局协调。"
BUREAU_REPLY = "已协调相关部门，请学校做好家长解释工作。"
STAFF_HANDLERS = 12  # a school's handlers are drawn from its first dozen staff
# The fields of an item a triage, an issue or the bureau changes: written back at once.
CHANGED_FIELDS = (
    "status",
    "category",
    "nature",
    "handler",
    "issue",
    "family_reply",
    "reply_method",
    "replied_on",
    "resolved_on",
    "escalation_note",
    "escalated_at",
    "bureau_reply",
    "bureau_replied_by",
    "bureau_replied_at",
    "updated_at",
)
UPDATE_BATCH = 1000


@dataclass
class DemoFeedbackSummary:
    items: int = 0
    to_school: int = 0
    open: int = 0
    escalated: int = 0
    issues: int = 0


@dataclass
class _Triaged:
    """What the school decided for one item at the school (drawn before anything is written)."""

    item: Suggestion
    category: str
    nature: str
    handler_id: int | None
    status: str
    family_reply: str
    reply_method: str
    escalate: bool
    bureau_reply: bool


@dataclass
class _SchoolWork:
    school: School
    admin: User
    issues: list[tuple[FeedbackIssue, list[Suggestion]]] = field(default_factory=list)
    triaged: list[_Triaged] = field(default_factory=list)


def demo_feedback_build(*, seed: int) -> DemoFeedbackSummary:
    """Add the ledger's items to the demo county's submitted visits and work them as schools do.
    Returns what was made. Needs a school admin per school; schools without one are skipped."""
    with transaction.atomic(), jit_off():
        return _build(seed)


def _build(seed: int) -> DemoFeedbackSummary:
    rng = random.Random(seed + 11)
    summary = DemoFeedbackSummary()
    inspector = User.objects.filter(role=Role.INSPECTOR, is_active=True).order_by("pk").first()
    admins = {
        user.school_id: user
        for user in User.objects.filter(role=Role.SCHOOL_ADMIN, is_active=True).order_by("-username", "pk")
    }
    demo_admin = User.objects.filter(username="school", role=Role.SCHOOL_ADMIN).first()
    if demo_admin is not None:
        admins[demo_admin.school_id] = demo_admin
    schools = list(School.objects.filter(pk__in=list(admins)).only("pk", "code", "name").order_by("code"))
    # The county in a fixed number of queries: each school's submitted visits (in the order they
    # were made), its items waiting at the school, its first staff.
    visits_of: dict[int, list[int]] = defaultdict(list)
    for school_id, visit_id in (
        Visit.objects.filter(status=Visit.Status.SUBMITTED)
        .order_by("school_id", "visited_at", "pk")
        .values_list("school_id", "pk")
        .iterator(chunk_size=20000)
    ):
        visits_of[school_id].append(visit_id)
    waiting: dict[int, list[Suggestion]] = defaultdict(list)
    for item in Suggestion.objects.filter(status=FeedbackStatus.OPEN, issue__isnull=True).order_by("pk"):
        waiting[item.school_id].append(item)
    staff_of: dict[int, list[int]] = defaultdict(list)
    for school_id, user_id in (
        User.objects.filter(school__isnull=False, is_active=True).order_by("pk").values_list("school_id", "pk")
    ):
        if len(staff_of[school_id]) < STAFF_HANDLERS:
            staff_of[school_id].append(user_id)

    # Every draw first, in the order of the schools, so that a seed gives the same county.
    works: list[_SchoolWork] = []
    new_items: list[Suggestion] = []
    today = timezone.localdate()
    categories = {text: (category, nature, reply) for text, category, nature, reply in (*WORDS, *EARLIER)}
    for index, school in enumerate(schools):
        admin = admins[school.pk]
        visits = visits_of.get(school.pk)
        if not visits:
            continue
        work = _SchoolWork(school=school, admin=admin)
        works.append(work)
        is_demo = demo_admin is not None and school.pk == demo_admin.school_id
        gate = is_demo or index % 8 < 5  # 校门口 in five schools of eight
        lunch = is_demo or index % 8 in (1, 4, 6)
        words = [rng.choice(WORDS) for _ in range(ITEMS_PER_SCHOOL)]
        items = [
            _item(school, visit_id=rng.choice(visits), text=text, to_school=rng.random() < TO_SCHOOL_SHARE)
            for text, *_ in words
        ]
        summary.items += len(items)
        # The items passed to the school by the visits themselves (visits.demo), and the new ones.
        at_school = [*waiting.get(school.pk, ()), *(item for item in items if item.to_school)]
        gate_items = _items(rng, school, visits, GATE[0], rng.randint(3, 6)) if gate else []
        if gate:  # the families who said the same on earlier visits belong to the same problem
            gate_items = [item for item in at_school if item.text == EARLIER[1][0]] + gate_items
            at_school = [item for item in at_school if item.text != EARLIER[1][0]]
        lunch_items = _items(rng, school, visits, LUNCH[0], rng.randint(2, 4)) if lunch else []
        new_items += [*items, *(item for item in gate_items if item.pk is None), *lunch_items]
        summary.items += len(gate_items) + len(lunch_items)
        summary.to_school += sum(item.to_school for item in items) + len(gate_items) + len(lunch_items)
        if gate_items:
            work.issues.append((_issue(school, GATE_TITLE, GATE[1], admin), gate_items))
            summary.issues += 1
        if lunch_items:
            issue = _issue(school, LUNCH_TITLE, LUNCH[1], admin)
            work.issues.append((issue, lunch_items))
            summary.issues += 1
            if rng.random() < 0.5 or is_demo:
                feedback_issue_resolve_change(issue, LUNCH_RESOLUTION, reply_method="meeting", today=today)
        staff = staff_of.get(school.pk, [])
        for item in at_school:
            category, nature, reply = categories.get(item.text, ("other", "individual", "已与家长沟通说明。"))
            draw = rng.random()
            if draw < RESOLVED_SHARE:
                status, family_reply, method = FeedbackStatus.RESOLVED, reply, rng.choice(REPLY_METHODS)
            elif draw < RESOLVED_SHARE + IN_PROGRESS_SHARE + ESCALATED_SHARE:
                status, family_reply, method = FeedbackStatus.IN_PROGRESS, "", ""
            else:
                continue  # still 待处理, untriaged: it ages in the ledger
            handler_id = rng.choice(staff) if staff else None
            escalate = status == FeedbackStatus.IN_PROGRESS and draw >= RESOLVED_SHARE + IN_PROGRESS_SHARE
            summary.escalated += escalate
            bureau_reply = escalate and inspector is not None and rng.random() < 0.4
            work.triaged.append(
                _Triaged(item, category, nature, handler_id, status, family_reply, method, escalate, bureau_reply)
            )

    # The new items as the visits' authors filed them, and the common problems.
    raised = dict(Visit.objects.filter(pk__in={item.visit_id for item in new_items}).values_list("pk", "visited_at"))
    for item in new_items:
        item.raised_on = timezone.localdate(raised[item.visit_id])
    rows_write(Suggestion, new_items)
    rows_write(FeedbackIssue, [issue for work in works for issue, _ in work.issues])

    # Then the school's and the bureau's work on them, by the services' own rules, in memory.
    handler_ids = {triaged.handler_id for work in works for triaged in work.triaged} - {None}
    handlers = User.objects.in_bulk(handler_ids)
    school_ids = [work.school.pk for work in works]
    inspectors_of: dict[int, list[int]] = defaultdict(list)
    for school_id, user_id in (
        InspectorAssignment.objects.filter(school_id__in=school_ids)
        .order_by("pk")
        .values_list("school_id", "inspector_id")
    ):
        inspectors_of[school_id].append(user_id)
    admins_of: dict[int, list[int]] = defaultdict(list)
    for school_id, user_id in (
        User.objects.filter(school_id__in=school_ids, role=Role.SCHOOL_ADMIN, is_active=True)
        .order_by("username")
        .values_list("school_id", "pk")
    ):
        admins_of[school_id].append(user_id)
    now = timezone.now()
    changed: list[Suggestion] = []
    history: list[FeedbackChange] = []
    audit: list[AuditEvent] = []
    notices: list[Notification] = []

    def record(item: Suggestion, before: dict, action: str, user: User | None) -> None:
        for row in feedback_history_rows(item, before, action=action, acting_user=user):
            (history if isinstance(row, FeedbackChange) else audit).append(row)

    for work in works:
        for issue, items in work.issues:
            items = sorted(items, key=lambda item: item.pk)  # the service works them in this order
            for item in items:
                before = feedback_item_snapshot(item)
                feedback_issue_item_add_change(item, issue)
                record(item, before, ISSUE_ADD_ACTION, work.admin)
            if issue.status == FeedbackIssue.Status.RESOLVED:
                for item in items:
                    if item.status in ISSUE_RESOLVES:
                        before = feedback_item_snapshot(item)
                        feedback_issue_item_resolve_change(item, issue)
                        record(item, before, ISSUE_RESOLVE_ACTION, work.admin)
            changed += items
        for triaged in work.triaged:
            item = triaged.item
            before = feedback_item_snapshot(item)
            triage = Triage(
                category=triaged.category,
                nature=triaged.nature,
                handler=handlers.get(triaged.handler_id),
                status=triaged.status,
                family_reply=triaged.family_reply,
                reply_method=triaged.reply_method,
            )
            feedback_item_triage_change(item, triage, today=today)
            record(item, before, TRIAGE_ACTION, work.admin)
            if triaged.escalate:
                before = feedback_item_snapshot(item)
                feedback_item_escalate_change(item, ESCALATION_NOTE, now=now)
                record(item, before, ESCALATE_ACTION, work.admin)
                notices += feedback_escalation_notifications(
                    item, school_name=work.school.name, inspector_ids=inspectors_of[work.school.pk]
                )
            if triaged.bureau_reply:
                before = feedback_item_snapshot(item)
                feedback_item_bureau_reply_change(item, BUREAU_REPLY, close=True, acting_user=inspector, now=now)
                record(item, before, feedback_bureau_reply_action(True), inspector)
                notices += feedback_bureau_reply_notifications(item, BUREAU_REPLY, admin_ids=admins_of[work.school.pk])
            changed.append(item)
    for item in changed:
        item.updated_at = now
    _rows_update(Suggestion, changed, CHANGED_FIELDS)
    rows_write(FeedbackChange, history)
    rows_write(AuditEvent, audit)
    rows_write(Notification, notices)
    summary.open = Suggestion.objects.filter(
        visit_submitted=True,
        status__in=(FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS, FeedbackStatus.ESCALATED),
    ).count()
    return summary


def _items(rng: random.Random, school: School, visits: list[int], text: str, count: int) -> list[Suggestion]:
    return [_item(school, visit_id=rng.choice(visits), text=text, to_school=True) for _ in range(count)]


def _item(school: School, *, visit_id: int, text: str, to_school: bool) -> Suggestion:
    """A new item of the visit, as the visit's author files it (``raised_on`` set once the visits'
    dates are read)."""
    return Suggestion(
        visit_id=visit_id,
        school_id=school.pk,
        text=text,
        reply="" if to_school else ON_SITE_REPLY,
        to_school=to_school,
        status=FeedbackStatus.OPEN if to_school else FeedbackStatus.ON_SITE,
        visit_submitted=True,
    )


def _issue(school: School, title: str, category: str, admin: User) -> FeedbackIssue:
    return FeedbackIssue(school=school, title=title, category=category, created_by=admin)


def _rows_update(model: type[models.Model], objects: list[models.Model], fields: tuple[str, ...]) -> None:
    """Write ``fields`` of saved ``objects`` back. On PostgreSQL one ``UPDATE … FROM (VALUES …)`` a
    batch, joined on the key (``bulk_update``'s CASE per row and field grows with the square of the
    batch); elsewhere ``bulk_update``."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, fields, batch_size=UPDATE_BATCH)
        return
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(f"%s::{column.db_type(connection)}" for column in columns) + ")"
    names = ", ".join(quote(column.column) for column in columns)
    assign = ", ".join(f"{quote(column.column)} = v.{quote(column.column)}" for column in columns[1:])
    key = quote(meta.pk.column)
    with connection.cursor() as cursor:
        for start in range(0, len(objects), UPDATE_BATCH):
            batch = objects[start : start + UPDATE_BATCH]
            params = []
            for obj in batch:
                obj._prepare_related_fields_for_save(operation_name="_rows_update")
                params += [column.get_db_prep_save(getattr(obj, column.attname), connection) for column in columns]
            cursor.execute(  # names from the model's meta, values as parameters
                f"UPDATE {quote(meta.db_table)} AS t SET {assign} "  # noqa: S608
                f"FROM (VALUES {', '.join([row] * len(batch))}) AS v ({names}) WHERE t.{key} = v.{key}",
                params,
            )
