"""Demo data of the feedback ledger (问题反馈台账, issue 11), drawn over the visits that
``visits.demo`` has filed: more of the families' words on those visits, most answered on site, the
rest passed to the school and triaged in realistic shares through the ledger's own services (so
each item has its history): resolved, in progress, still open and ageing, escalated to the bureau
(some answered), one withdrawn; and a few common problems (校门口接送拥堵, 午餐价格) raised in
several schools, grouped by each school, one of them resolved once for all its items.

Called with one line from ``seed_demo``; deterministic for a seed."""

import random
from dataclasses import dataclass

from django.utils import timezone

from schools.models import Role, School, User
from visits.feedback import (
    Triage,
    feedback_issue_create,
    feedback_issue_resolve,
    feedback_item_bureau_reply,
    feedback_item_escalate,
    feedback_item_triage,
)
from visits.models import FeedbackStatus, Suggestion, Visit

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


@dataclass
class DemoFeedbackSummary:
    items: int = 0
    to_school: int = 0
    open: int = 0
    escalated: int = 0
    issues: int = 0


def demo_feedback_build(*, seed: int) -> DemoFeedbackSummary:
    """Add the ledger's items to the demo county's submitted visits and work them as schools do.
    Returns what was made. Needs a school admin per school; schools without one are skipped."""
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
    schools = list(School.objects.filter(pk__in=list(admins)).order_by("code"))
    for index, school in enumerate(schools):
        admin = admins[school.pk]
        visits = list(
            Visit.objects.filter(school=school, status=Visit.Status.SUBMITTED)
            .only("pk", "school_id", "visited_at")
            .order_by("visited_at", "pk")
        )
        if not visits:
            continue
        is_demo = demo_admin is not None and school.pk == demo_admin.school_id
        gate = is_demo or index % 8 < 5  # 校门口 in five schools of eight
        lunch = is_demo or index % 8 in (1, 4, 6)
        words = [rng.choice(WORDS) for _ in range(ITEMS_PER_SCHOOL)]
        items = [
            _item(visit=rng.choice(visits), text=text, to_school=rng.random() < TO_SCHOOL_SHARE) for text, *_ in words
        ]
        summary.items += len(items)
        categories = {text: (category, nature, reply) for text, category, nature, reply in (*WORDS, *EARLIER)}
        # The items passed to the school by the visits themselves (visits.demo), and the new ones.
        at_school = list(
            Suggestion.objects.filter(school=school, status=FeedbackStatus.OPEN, issue__isnull=True).order_by("pk")
        )
        gate_items = _items(rng, visits, GATE[0], rng.randint(3, 6)) if gate else []
        if gate:  # the families who said the same on earlier visits belong to the same problem
            gate_items += [item for item in at_school if item.text == EARLIER[1][0]]
            at_school = [item for item in at_school if item.text != EARLIER[1][0]]
        lunch_items = _items(rng, visits, LUNCH[0], rng.randint(2, 4)) if lunch else []
        summary.items += len(gate_items) + len(lunch_items)
        summary.to_school += sum(item.to_school for item in items) + len(gate_items) + len(lunch_items)
        if gate_items:
            feedback_issue_create(
                school=school, title=GATE_TITLE, category=GATE[1], items=gate_items, acting_user=admin
            )
            summary.issues += 1
        if lunch_items:
            issue = feedback_issue_create(
                school=school, title=LUNCH_TITLE, category=LUNCH[1], items=lunch_items, acting_user=admin
            )
            summary.issues += 1
            if rng.random() < 0.5 or is_demo:
                feedback_issue_resolve(
                    issue=issue,
                    resolution="经核算，午餐标准按物价部门核定执行，已增加每份菜量并公示食谱。",
                    reply_method="meeting",
                    acting_user=admin,
                )
        staff = list(User.objects.filter(school=school, is_active=True).order_by("pk")[:12])
        for item in at_school:
            category, nature, reply = categories.get(item.text, ("other", "individual", "已与家长沟通说明。"))
            draw = rng.random()
            if draw < RESOLVED_SHARE:
                status, family_reply, method = FeedbackStatus.RESOLVED, reply, rng.choice(REPLY_METHODS)
            elif draw < RESOLVED_SHARE + IN_PROGRESS_SHARE + ESCALATED_SHARE:
                status, family_reply, method = FeedbackStatus.IN_PROGRESS, "", ""
            else:
                continue  # still 待处理, untriaged: it ages in the ledger
            feedback_item_triage(
                item=item,
                triage=Triage(
                    category=category,
                    nature=nature,
                    handler=rng.choice(staff) if staff else None,
                    status=status,
                    family_reply=family_reply,
                    reply_method=method,
                ),
                acting_user=admin,
            )
            if status == FeedbackStatus.IN_PROGRESS and draw >= RESOLVED_SHARE + IN_PROGRESS_SHARE:
                feedback_item_escalate(
                    item=item, note="涉及校外部门，学校无法单独解决，请教育局协调。", acting_user=admin
                )
                summary.escalated += 1
                if inspector is not None and rng.random() < 0.4:
                    feedback_item_bureau_reply(
                        item=item, reply="已协调相关部门，请学校做好家长解释工作。", close=True, acting_user=inspector
                    )
    summary.open = Suggestion.objects.filter(
        visit_submitted=True,
        status__in=(FeedbackStatus.OPEN, FeedbackStatus.IN_PROGRESS, FeedbackStatus.ESCALATED),
    ).count()
    return summary


def _items(rng: random.Random, visits: list[Visit], text: str, count: int) -> list[Suggestion]:
    return [_item(visit=rng.choice(visits), text=text, to_school=True) for _ in range(count)]


def _item(*, visit: Visit, text: str, to_school: bool) -> Suggestion:
    return Suggestion.objects.create(
        visit=visit,
        school_id=visit.school_id,
        text=text,
        reply="" if to_school else ON_SITE_REPLY,
        to_school=to_school,
        raised_on=timezone.localdate(visit.visited_at),
        status=FeedbackStatus.OPEN if to_school else FeedbackStatus.ON_SITE,
        visit_submitted=True,
    )
