"""Demo data of the special-student ledgers (``seed_demo``): support plans — some missing (待建档),
some overdue for review — and a care log since the term began with a few missed days and weeks, so
that the demo shows the ledgers at work. Deterministic for a seed."""

import datetime
import random
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from ledgers.calendar import school_calendars, week_start
from ledgers.care import care_students
from ledgers.care_models import CalendarOverride, CareAsk, CareMeeting, SupportPlan
from ledgers.support import special_students
from schools.models import Role, School, SchoolYear, User
from students.demo import HEAD_TEACHER
from students.models import CARE_CATEGORIES, SPECIAL_CATEGORIES

PLAN_MISSING_SHARE = 0.25
PLAN_OVERDUE_SHARE = 0.2
ASK_MISSED_SHARE = 0.03
MEETING_MISSED_SHARE = 0.1
BATCH_SIZE = 2000

MEASURES = {
    "economic": ("落实营养改善计划和生活补助；协调减免校服费。", "申请县教育资助；学校爱心基金每学期补助。"),
    "life": ("班主任每周了解在家生活情况；冬季添置衣被。", "安排午餐和课后看护；生病时及时联系监护人。"),
    "study": ("安排学习伙伴一对一帮扶；每周课后辅导两次。", "任课教师分科辅导，作业面批。"),
    "mind": ("每月一次谈心；鼓励参加兴趣小组和集体活动。", "心理老师每月一次辅导；表扬点滴进步。"),
}
GUARDIAN_WORDS = ("祖母", "祖父", "母亲", "父亲", "姑姑", "舅舅")


@dataclass
class DemoLedgersSummary:
    plans: int = 0
    plans_missing: int = 0
    plans_overdue: int = 0
    asks: int = 0
    asks_missed: int = 0
    meetings: int = 0

    def __str__(self) -> str:
        return (
            f"帮扶计划 {self.plans} 份（待建档 {self.plans_missing} 人，逾期待复核 {self.plans_overdue} 份），"
            f"每日一问 {self.asks} 条（漏记 {self.asks_missed} 天），每周一见 {self.meetings} 条"
        )


def demo_ledgers_build(*, seed: int, today: datetime.date | None = None) -> DemoLedgersSummary:
    """Fill the support ledger and the care log of every school up to ``today`` (not including it:
    today's asks are the head teachers' to record)."""
    today = today or timezone.localdate()
    rng = random.Random(seed * 104729 + 3)
    summary = DemoLedgersSummary()
    year = SchoolYear.current(today)
    if year is None:
        return summary
    with transaction.atomic():
        # The county's autumn term as the bureau sets it (the second year is past the holiday table).
        term_year = today.year if today.month >= 8 else today.year - 1
        CalendarOverride.objects.create(
            kind=CalendarOverride.Kind.TERM,
            name="秋季学期",
            start=datetime.date(term_year, 9, 1),
            end=datetime.date(term_year + 1, 1, 22),
        )
        CalendarOverride.objects.create(
            kind=CalendarOverride.Kind.TERM,
            name="春季学期",
            start=datetime.date(term_year + 1, 2, 24),
            end=datetime.date(term_year + 1, 7, 8),
        )
        schools = list(School.objects.order_by("pk"))
        admins = {u.school_id: u for u in User.objects.filter(role=Role.SCHOOL_ADMIN).order_by("pk")}
        showcase = User.objects.filter(username=HEAD_TEACHER.username).first()
        for school in schools:
            _plans(rng, school, year=year, today=today, admin=admins.get(school.pk), summary=summary)
        calendars = school_calendars([s.pk for s in schools])
        children = list(
            care_students([s.pk for s in schools], today=today)
            .select_related("school_class__head_teacher")
            .prefetch_related("categories")
            .order_by("pk")
        )
        asks, meetings = [], []
        for child in children:
            calendar = calendars[child.school_id]
            start = max(calendar.year_start(today), _care_start(child))
            days = calendar.school_days(start, today - datetime.timedelta(days=1))
            head = child.school_class.head_teacher if child.school_class_id else None
            showcase_child = showcase is not None and head is not None and head.pk == showcase.pk
            for index, day in enumerate(days):
                last = index == len(days) - 1
                # The showcase class: its unsupported child was not asked after on the last school day.
                missed = rng.random() < ASK_MISSED_SHARE
                if showcase_child and last:
                    missed = any(c.category == "unsupported" for c in child.categories.all())
                if missed:
                    summary.asks_missed += 1
                    continue
                roll = rng.random()
                outcome = (
                    CareAsk.Outcome.FACE
                    if roll < 0.8
                    else CareAsk.Outcome.PHONE
                    if roll < 0.9
                    else CareAsk.Outcome.WECHAT
                    if roll < 0.97
                    else CareAsk.Outcome.LEAVE
                )
                asks.append(
                    CareAsk(
                        student=child,
                        school_id=child.school_id,
                        day=day,
                        outcome=outcome,
                        reason="感冒请假，已电话联系监护人" if outcome == CareAsk.Outcome.LEAVE else "",
                        recorded_by=head,
                        recorded_at=timezone.make_aware(datetime.datetime.combine(day, datetime.time(16, 30))),
                    )
                )
            for week in sorted({week_start(d) for d in days if week_start(d) < week_start(today)}):
                if rng.random() < MEETING_MISSED_SHARE:
                    continue
                met_on = week + datetime.timedelta(days=rng.randint(0, 4))
                meetings.append(
                    CareMeeting(
                        student=child,
                        school_id=child.school_id,
                        week_start=week,
                        met_on=met_on,
                        place="校长室",
                        recorded_by=admins.get(child.school_id),
                    )
                )
        CareAsk.objects.bulk_create(asks, batch_size=BATCH_SIZE)
        CareMeeting.objects.bulk_create(meetings, batch_size=BATCH_SIZE)
        summary.asks += len(asks)
        summary.meetings += len(meetings)
    return summary


def _care_start(student) -> datetime.date:
    starts = [c.start for c in student.categories.all() if c.category in CARE_CATEGORIES]
    return min(starts) if starts else datetime.date.min


def _plans(rng, school: School, *, year: SchoolYear, today, admin: User | None, summary: DemoLedgersSummary) -> None:
    students = list(
        special_students(school, today=today)
        .select_related("school_class__head_teacher")
        .prefetch_related("categories", "guardians")
        .order_by("pk")
    )
    plans = []
    for student in students:
        if rng.random() < PLAN_MISSING_SHARE:
            summary.plans_missing += 1
            continue
        overdue = rng.random() < PLAN_OVERDUE_SHARE
        written = max(year.start, today - datetime.timedelta(days=rng.randint(20, 80)))
        review = (
            today - datetime.timedelta(days=rng.randint(3, 20))
            if overdue
            else today + datetime.timedelta(days=rng.randint(10, 80))
        )
        summary.plans_overdue += overdue
        guardian = next(iter(student.guardians.all()), None)
        head = student.school_class.head_teacher if student.school_class_id else None
        values = {
            f"{prefix}_{part}": value
            for prefix, options in MEASURES.items()
            for part, value in (
                ("measures", rng.choice(options)),
                ("who", head.display_name if head else ""),
            )
        }
        plans.append(
            SupportPlan(
                student=student,
                school=school,
                school_year=year,
                categories=[
                    c.category
                    for c in student.categories.all()
                    if c.in_force_on(today) and c.category in (*SPECIAL_CATEGORIES, *CARE_CATEGORIES)
                ],
                consent_by=f"{guardian.name}（{guardian.relation or rng.choice(GUARDIAN_WORDS)}）" if guardian else "",
                consent_on=written if guardian else None,
                consent_method=rng.choice(SupportPlan.ConsentMethod.values) if guardian else "",
                next_review_on=review,
                created_by=head or admin,
                created_at=timezone.make_aware(datetime.datetime.combine(written, datetime.time(10, 0))),
                **values,
            )
        )
    SupportPlan.objects.bulk_create(plans, batch_size=BATCH_SIZE)
    summary.plans += len(plans)
