"""Demo data of the special-student ledgers (``seed_demo``): support plans — some missing (待建档),
some overdue for review — and a care log since the term began with a few missed days and weeks, so
that the demo shows the ledgers at work. Deterministic for a seed. City-scale (issue 9): the county's
students are read in a fixed number of queries whatever its size, and the rows written with
``schools.bulk.values_write`` (tuples through COPY on PostgreSQL)."""

import datetime
import random
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ledgers.calendar import school_calendars, week_start
from ledgers.care import care_students
from ledgers.care_models import CalendarOverride, CareAsk, CareMeeting, SupportPlan
from ledgers.support import special_students_of_schools
from schools.bulk import values_write
from schools.models import Role, School, SchoolYear, User
from schools.planner import jit_off
from students.demo import HEAD_TEACHER
from students.models import CARE_CATEGORIES, SPECIAL_CATEGORIES, Guardian, StudentCategory

PLAN_MISSING_SHARE = 0.25
PLAN_OVERDUE_SHARE = 0.2
ASK_MISSED_SHARE = 0.03
MEETING_MISSED_SHARE = 0.1

MEASURES = {
    "economic": ("落实营养改善计划和生活补助；协调减免校服费。", "申请县教育资助；学校爱心基金每学期补助。"),
    "life": ("班主任每周了解在家生活情况；冬季添置衣被。", "安排午餐和课后看护；生病时及时联系监护人。"),
    "study": ("安排学习伙伴一对一帮扶；每周课后辅导两次。", "任课教师分科辅导，作业面批。"),
    "mind": ("每月一次谈心；鼓励参加兴趣小组和集体活动。", "心理老师每月一次辅导；表扬点滴进步。"),
}
ASK_COLUMNS = ("student_id", "school_id", "day", "outcome", "reason", "recorded_by_id", "recorded_at")
MEETING_COLUMNS = ("student_id", "school_id", "week_start", "met_on", "place", "recorded_by_id")
PLAN_COLUMNS = (
    "student_id",
    "school_id",
    "school_year_id",
    "categories",
    "consent_by",
    "consent_on",
    "consent_method",
    "next_review_on",
    "created_by_id",
    "created_at",
    *(f"{prefix}_{part}" for prefix in MEASURES for part in ("measures", "who")),
)
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
    with transaction.atomic(), jit_off():
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
        school_ids = list(School.objects.order_by("pk").values_list("pk", flat=True))
        admins = dict(User.objects.filter(role=Role.SCHOOL_ADMIN).order_by("pk").values_list("school_id", "pk"))
        showcase = User.objects.filter(username=HEAD_TEACHER.username).values_list("pk", flat=True).first()
        _plans(rng, school_ids, year=year, today=today, admins=admins, summary=summary)
        calendars = school_calendars(school_ids)
        children = list(
            care_students(school_ids, today=today)
            .order_by("pk")
            .values_list("pk", "school_id", "school_class__head_teacher_id")
        )
        categories = _categories_of(StudentCategory.objects.filter(student__in=care_students(school_ids, today=today)))
        days_from: dict[tuple[int, datetime.date], list[datetime.date]] = {}
        yesterday = today - datetime.timedelta(days=1)
        this_week = week_start(today)
        asks, meetings = [], []
        after_school: dict[datetime.date, datetime.datetime] = {}  # a day's 16:30, when asks are recorded
        for student_id, school_id, head_id in children:
            calendar = calendars[school_id]
            mine = categories.get(student_id, ())
            care_starts = [start for category, start in mine if category in CARE_CATEGORIES]
            start = max(calendar.year_start(today), min(care_starts) if care_starts else datetime.date.min)
            key = (school_id, start)
            if key not in days_from:
                days_from[key] = calendar.school_days(start, yesterday)
            days = days_from[key]
            showcase_child = showcase is not None and head_id == showcase
            last = len(days) - 1
            for index, day in enumerate(days):
                missed = rng.random() < ASK_MISSED_SHARE
                # The showcase class: its unsupported child was not asked after on the last school day.
                if showcase_child and index == last:
                    missed = any(category == "unsupported" for category, _start in mine)
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
                if day not in after_school:
                    after_school[day] = timezone.make_aware(datetime.datetime.combine(day, datetime.time(16, 30)))
                reason = "感冒请假，已电话联系监护人" if outcome == CareAsk.Outcome.LEAVE else ""
                asks.append((student_id, school_id, day, outcome, reason, head_id, after_school[day]))
            for week in sorted({week_start(d) for d in days if week_start(d) < this_week}):
                if rng.random() < MEETING_MISSED_SHARE:
                    continue
                met_on = week + datetime.timedelta(days=rng.randint(0, 4))
                meetings.append((student_id, school_id, week, met_on, "校长室", admins.get(school_id)))
        values_write(CareAsk, ASK_COLUMNS, asks)
        values_write(CareMeeting, MEETING_COLUMNS, meetings)
        summary.asks += len(asks)
        summary.meetings += len(meetings)
    return summary


def _categories_of(categories) -> dict[int, list[tuple[str, datetime.date]]]:
    """{student id: [(category, start)]} of the ``StudentCategory`` rows (a queryset), in the order of
    its Meta (as ``student.categories.all()`` gives them). One query."""
    of_student = defaultdict(list)
    for student_id, category, start in categories.order_by("student", "category", "start").values_list(
        "student_id", "category", "start"
    ):
        of_student[student_id].append((category, start))
    return of_student


def _plans(
    rng, school_ids: list[int], *, year: SchoolYear, today, admins: dict[int, int], summary: DemoLedgersSummary
) -> None:
    """The support plans of the special students of the schools, read in a fixed number of queries."""
    first_guardian = Guardian.objects.filter(student=OuterRef("pk")).order_by("pk")
    students = special_students_of_schools(school_ids, today=today)
    rows = list(
        students.annotate(
            guardian_name=Subquery(first_guardian.values("name")[:1]),
            guardian_relation=Subquery(first_guardian.values("relation")[:1]),
        )
        .order_by("school_id", "pk")
        .values_list("pk", "school_id", "school_class__head_teacher_id", "guardian_name", "guardian_relation")
    )
    # A plan names the categories in force today that a plan is for.
    categories = _categories_of(
        StudentCategory.objects.in_force_on(today).filter(
            student__in=students, category__in=(*SPECIAL_CATEGORIES, *CARE_CATEGORIES)
        )
    )
    heads = User.objects.in_bulk({head_id for _, _, head_id, _, _ in rows} - {None})
    consent_methods = SupportPlan.ConsentMethod.values
    plans = []
    for student_id, school_id, head_id, guardian_name, guardian_relation in rows:
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
        who = heads[head_id].display_name if head_id else ""
        measures = []
        for options in MEASURES.values():
            measures += (rng.choice(options), who)
        guardian = guardian_name is not None
        plans.append(
            (
                student_id,
                school_id,
                year.pk,
                [category for category, _start in categories.get(student_id, ())],
                f"{guardian_name}（{guardian_relation or rng.choice(GUARDIAN_WORDS)}）" if guardian else "",
                written if guardian else None,
                rng.choice(consent_methods) if guardian else "",
                review,
                head_id or admins.get(school_id),
                timezone.make_aware(datetime.datetime.combine(written, datetime.time(10, 0))),
                *measures,
            )
        )
    values_write(SupportPlan, PLAN_COLUMNS, plans)
    summary.plans += len(plans)
