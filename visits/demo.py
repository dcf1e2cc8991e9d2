"""The demo campaign in progress (``seed_demo``): visits, safety reports and the families' open
suggestions for the phases already past, drawn over a county that ``students.demo`` has built.

Shares follow what a county reports in December: nearly every student visited in the first round
(each school between 86% and 99%), mostly in person; focus and special students revisited in the
second round as far as it has run, special students mostly at home but some still short of the two
in-home visits a school year asks; about one visit in twenty records a suggestion, a quarter of those
passed to the school. In-home visits of the last thirty days have the safety report they were filed
under; the demo school also has teachers out right now and one report overdue, so that its safety
board shows what it is for.

Rows go in as tuples with ``schools.bulk.values_write`` (COPY on PostgreSQL) a batch at a time, reading the
county a slice of schools at a time: the queries grow with the number of batches, not of students,
and memory stays flat, so the same code builds the city-scale data set for benchmarks.
"""

import datetime
import functools
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from schools.bulk import indexes_built_at_end, rows_write, uuid4_text, values_write
from schools.models import Campaign, Phase, Role, School, SchoolClass, TeachingAssignment, User
from students.models import FOCUS_CATEGORIES, SPECIAL_CATEGORIES, Guardian, Student, StudentCategory
from visits.models import Content, FeedbackStatus, Method, SafetyReport, Suggestion, Visit
from visits.safety import safety_reports_mark_overdue

BATCH_SIZE = 2000
SCHOOLS_PER_SLICE = 40
SAFETY_HISTORY_DAYS = 30

# How a first-round visit is made (上门 most; the rest by phone, WeChat, at school or nearby).
FIRST_ROUND_METHODS = (
    (Method.IN_HOME, 0.62),
    (Method.NEARBY, 0.08),
    (Method.PHONE, 0.11),
    (Method.APPOINTMENT, 0.06),
    (Method.WECHAT, 0.11),
    (Method.QQ, 0.02),
)
REVISIT_METHODS = ((Method.IN_HOME, 0.7), (Method.PHONE, 0.15), (Method.WECHAT, 0.1), (Method.APPOINTMENT, 0.05))
# Shares of the students a round reaches by its end.
FIRST_ROUND_LOW, FIRST_ROUND_HIGH = 0.86, 0.99
REVISIT_SHARE = 0.82
SPECIAL_SECOND_IN_HOME = 0.7
SUGGESTION_SHARE = 0.05
TO_SCHOOL_SHARE = 0.25
COMPANION_SHARE = 0.35

SITUATIONS = (
    "孩子在家能按时完成作业，家长关心学习，沟通顺畅。",
    "家中由祖辈照看，生活起居正常，学习上辅导不足。",
    "孩子性格开朗，喜欢运动，家长希望多关注数学学习。",
    "家庭经济较紧张，孩子懂事，周末帮忙做家务。",
    "孩子近期情绪有些低落，家长担心与同学相处问题。",
    "家长外出务工，孩子与母亲同住，手机使用时间偏长。",
    "住房条件一般，学习空间有限，已建议固定学习角。",
    "家长重视教育，希望学校多组织课外阅读活动。",
)
MEASURES = (
    "班主任每周与家长电话沟通一次，关注作业完成情况。",
    "安排学习小组结对帮扶，每周反馈一次进步情况。",
    "协助申请资助政策，学校优先安排午餐补助。",
    "心理老师每两周谈心一次，家长配合记录情绪变化。",
    "约定控制手机使用时间，家长每晚检查作业。",
    "留守儿童之家结对，每周视频联系在外父母。",
)
SUGGESTIONS = (
    ("希望学校延长课后服务时间。", "学校已在研究增加课后服务时段，下学期公布。"),
    ("放学时校门口交通拥堵，担心孩子安全。", "已向学校反映，建议错峰接送。"),
    ("希望食堂增加蔬菜品种。", ""),
    ("孩子作业量有时偏多，晚上写到十点。", "会与各科老师沟通，统筹作业量。"),
    ("希望学校多开展心理健康讲座。", ""),
    ("校车路线能否延伸到我们村？", ""),
    ("希望老师多反馈孩子在校表现。", "已加家长微信，每周反馈。"),
)
GUARDIAN_PRESENT = 0.9
# The checklist's items past the two every visit covers (read once: ``Content.values`` builds a list).
BASE_CONTENTS = tuple(Content.values[:2])
OPTIONAL_CONTENTS = tuple(Content.values[2:])
# Plain strings of the choices written per row (an enum member is looked up on each use).
SUBMITTED = Visit.Status.SUBMITTED.value
RETURNED = SafetyReport.Status.RETURNED.value
IN_HOME = Method.IN_HOME.value
SAFETY_HISTORY = datetime.timedelta(days=SAFETY_HISTORY_DAYS)


@dataclass
class _Pupil:
    id: int
    class_id: int | None
    address: str
    guardian: str
    focus: bool
    special: bool


@dataclass
class _School:
    id: int
    classes: dict[int, list[int]] = field(default_factory=dict)  # class -> its teachers, head first
    staff: list[int] = field(default_factory=list)
    admins: list[int] = field(default_factory=list)
    pupils: list[_Pupil] = field(default_factory=list)


@dataclass
class DemoActivitySummary:
    visits: int = 0
    safety_reports: int = 0
    suggestions: int = 0
    open_suggestions: int = 0


def demo_activity_build(
    *, seed: int, now: datetime.datetime | None = None, rounds_of_visits: int = 1
) -> DemoActivitySummary:
    """Visits, safety reports and suggestions of the current campaign's phases up to ``now``.

    ``rounds_of_visits`` above one has teachers go round again (each round drawn like the first):
    a county where families are visited more often, for benchmarks at the visit counts a city
    reports (2.5 million visits for 900,000 students is about two rounds)."""
    now = now or timezone.now()
    zone = ZoneInfo(settings.TIME_ZONE)
    today = now.astimezone(zone).date()
    campaign = Campaign.current(today)
    summary = DemoActivitySummary()
    if campaign is None:
        return summary
    visiting = [p for p in campaign.phases.all() if p.kind in (Phase.Kind.FULL_ROUND, Phase.Kind.REVISIT)]
    rng = random.Random(seed * 7919 + 17)
    writer = _Writer(summary, seed=seed)
    written = [Visit, Visit.students.through, Visit.companions.through, Suggestion]
    written += [SafetyReport, SafetyReport.students.through, SafetyReport.companions.through]
    with transaction.atomic():
        with indexes_built_at_end(written):
            # Each slice of schools read once, all its rounds drawn before the next slice is read.
            for school in (s for chunk in _school_slices(today=today) for _ in range(rounds_of_visits) for s in chunk):
                first_round_share = rng.uniform(FIRST_ROUND_LOW, FIRST_ROUND_HIGH)
                for phase in visiting:
                    days = _days_run(phase, today)
                    if not days:
                        continue
                    # A round reaches its students steadily: by today, the share of its days gone by.
                    progress = len(days) / ((phase.end - phase.start).days + 1)
                    if phase.kind == Phase.Kind.FULL_ROUND:
                        _first_round(rng, writer, school, phase, days, first_round_share * progress, zone, now)
                    else:
                        _revisits(rng, writer, school, phase, days, progress, zone, now)
            writer.flush()
        _today_on_the_demo_board(rng, writer, now)
        writer.flush()
    return summary


def _days_run(phase: Phase, today: datetime.date) -> list[datetime.date]:
    """The phase's days before today (today's visits are the user's to file)."""
    last = min(phase.end, today - datetime.timedelta(days=1))
    return [phase.start + datetime.timedelta(days=n) for n in range((last - phase.start).days + 1)]


def _school_slices(*, today: datetime.date) -> Iterator[list[_School]]:
    """The county a slice of schools at a time, with what a visit needs: each class's teachers, the
    staff, and the active students with their address, guardian and whether they are focus or special."""
    school_ids = list(School.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(school_ids), SCHOOLS_PER_SLICE):
        ids = school_ids[start : start + SCHOOLS_PER_SLICE]
        schools = {pk: _School(id=pk) for pk in ids}
        for pk, school_id, head in (
            SchoolClass.objects.filter(school_id__in=ids)
            .order_by("pk")
            .values_list("pk", "school_id", "head_teacher_id")
        ):
            schools[school_id].classes[pk] = [head] if head else []
        for class_id, school_id, teacher in (
            TeachingAssignment.objects.filter(school_class__school_id__in=ids)
            .order_by("pk")
            .values_list("school_class_id", "school_class__school_id", "teacher_id")
        ):
            teachers = schools[school_id].classes[class_id]
            if teacher not in teachers:
                teachers.append(teacher)
        for pk, school_id, role in (
            User.objects.filter(school_id__in=ids, is_active=True).order_by("pk").values_list("pk", "school_id", "role")
        ):
            schools[school_id].staff.append(pk)
            if role == Role.SCHOOL_ADMIN:
                schools[school_id].admins.append(pk)
        categories: dict[int, set[str]] = defaultdict(set)
        for student_id, category in (
            StudentCategory.objects.filter(student__school_id__in=ids, start__lte=today)
            .exclude(end__lt=today)
            .values_list("student_id", "category")
        ):
            categories[student_id].add(category)
        guardians = dict(
            Guardian.objects.filter(student__school_id__in=ids).order_by("-pk").values_list("student_id", "name")
        )
        for pk, school_id, class_id, address in (
            Student.objects.filter(school_id__in=ids, status=Student.Status.ACTIVE)
            .order_by("pk")
            .values_list("pk", "school_id", "school_class_id", "address")
        ):
            found = categories.get(pk, set())
            schools[school_id].pupils.append(
                _Pupil(
                    id=pk,
                    class_id=class_id,
                    address=address,
                    guardian=guardians.get(pk, ""),
                    focus=bool(found & set(FOCUS_CATEGORIES)),
                    special=bool(found & set(SPECIAL_CATEGORIES)),
                )
            )
        yield [schools[pk] for pk in ids]


def _weighted(rng: random.Random, choices) -> str:
    roll, total = rng.random(), 0.0
    for value, share in choices:
        total += share
        if roll < total:
            return value
    return choices[0][0]


# Durations looked up rather than built per visit (a million visits build several million).
MINUTES = tuple(datetime.timedelta(minutes=n) for n in range(24 * 60))


def _when(rng: random.Random, days: list[datetime.date], zone: ZoneInfo, now: datetime.datetime) -> datetime.datetime:
    """A time teachers visit: after school on weekdays, daytime at weekends; never after now."""
    day = rng.choice(days)
    weekend = day.weekday() >= 5
    # randrange(a, b + 1) is randint(a, b), the same draw without a call in between.
    minutes = rng.randrange(9 * 60, 17 * 60 + 1) if weekend else rng.randrange(16 * 60 + 30, 20 * 60 + 1)
    moment = _midnight(day, zone) + MINUTES[minutes]
    return min(moment, now - MINUTES[60])


@functools.lru_cache(maxsize=1024)
def _midnight(day: datetime.date, zone: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=zone)


def _people(rng: random.Random, school: _School, pupil: _Pupil) -> tuple[int, list[int]]:
    """The lead teacher (the head teacher mostly, else a teacher of the class) and companions."""
    teachers = school.classes.get(pupil.class_id) or school.staff
    lead = teachers[0] if rng.random() < 0.7 or len(teachers) == 1 else rng.choice(teachers[1:])
    companions = []
    if rng.random() < COMPANION_SHARE:
        others = [pk for pk in (teachers if len(teachers) > 1 else school.staff) if pk != lead]
        if others:
            companions.append(rng.choice(others))
    return lead, companions


def _first_round(rng, writer, school: _School, phase, days, share, zone, now) -> None:
    for pupil in school.pupils:
        if rng.random() >= share:
            continue
        method = Method.IN_HOME if pupil.special and rng.random() < 0.85 else _weighted(rng, FIRST_ROUND_METHODS)
        writer.visit(rng, school, pupil, phase=phase, method=method, when=_when(rng, days, zone, now), now=now)


def _revisits(rng, writer, school: _School, phase, days, progress, zone, now) -> None:
    """Focus and special students are visited again; a special student needs two in-home visits a
    school year, and has had the second as far as the round has gone."""
    for pupil in school.pupils:
        if not (pupil.focus or pupil.special) or rng.random() >= REVISIT_SHARE * progress:
            continue
        if pupil.special:
            writer.visit(
                rng, school, pupil, phase=phase, method=Method.IN_HOME, when=_when(rng, days, zone, now), now=now
            )
            if rng.random() < SPECIAL_SECOND_IN_HOME * progress:
                writer.visit(
                    rng, school, pupil, phase=phase, method=Method.IN_HOME, when=_when(rng, days, zone, now), now=now
                )
        else:
            method = _weighted(rng, REVISIT_METHODS)
            writer.visit(rng, school, pupil, phase=phase, method=method, when=_when(rng, days, zone, now), now=now)


VISIT_COLUMNS = (
    "school_id",
    "lead_teacher_id",
    "visited_at",
    "phase_id",
    "method",
    "guardians_met",
    "contents",
    "situation",
    "measures",
    "consent_recorded",
    "integrity_declared",
    "status",
    "submitted_at",
    "public_id",
    "safety_report_id",
)
REPORT_COLUMNS = (
    "school_id",
    "teacher_id",
    "address",
    "planned_start",
    "expected_minutes",
    "phone",
    "status",
    "due_at",
    "checked_in_at",
    "public_id",
)


class _Writer:
    """Collects rows as tuples and writes them a batch at a time with ``values_write`` (no model
    instance per row): safety reports first, then visits (which point to them), then the rows that
    need the visits' ids. Public ids come from their own seeded generator, so that the visits'
    draws are the same with or without them and no system entropy is read per row."""

    def __init__(self, summary: DemoActivitySummary, *, seed: int) -> None:
        self.summary = summary
        self.ids = random.Random(seed * 31 + 5)
        # (visit row without its report id, student, companions, suggestions, report row or None)
        self.visits: list[tuple[tuple, int, list[int], list[tuple[str, str, bool]], tuple | None]] = []

    def visit(self, rng, school: _School, pupil: _Pupil, *, phase, method, when, now) -> None:
        lead, companions = _people(rng, school, pupil)
        contents = [*BASE_CONTENTS, *[code for code in OPTIONAL_CONTENTS if rng.random() < 0.55]]
        focus = pupil.focus or pupil.special
        guardians_met = f"{pupil.guardian}（监护人）" if pupil.guardian and rng.random() < GUARDIAN_PRESENT else ""
        situation = rng.choice(SITUATIONS)
        measures = rng.choice(MEASURES) if focus else ""
        consent = pupil.special or rng.random() < 0.5
        submitted_at = min(when + MINUTES[rng.randrange(30, 601)], now)
        row = (
            school.id,
            lead,
            when,
            phase.pk,
            method,
            guardians_met,
            contents,
            situation,
            measures,
            consent,
            True,
            SUBMITTED,
            submitted_at,
            uuid4_text(self.ids),
        )
        suggestions = []
        if rng.random() < SUGGESTION_SHARE:
            text, reply = rng.choice(SUGGESTIONS)
            to_school = rng.random() < TO_SCHOOL_SHARE
            suggestions.append((text, "" if to_school else reply or "已现场解释说明，家长表示理解。", to_school))
        report = None
        if method == IN_HOME and when >= now - SAFETY_HISTORY:
            minutes = rng.choice((45, 60, 60, 90))
            start = when - MINUTES[20]
            report = (
                school.id,
                lead,
                pupil.address or "学生家中",
                start,
                minutes,
                f"13{rng.randrange(100000000, 1000000000)}",
                RETURNED,
                start + MINUTES[minutes + 30],
                start + MINUTES[minutes - rng.randrange(0, 21)],
                uuid4_text(self.ids),
            )
        self.visits.append((row, pupil.id, companions, suggestions, report))
        if len(self.visits) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.visits:
            return
        reports = [report for *_, report in self.visits if report is not None]
        report_ids = iter(values_write(SafetyReport, REPORT_COLUMNS, reports))
        written = [  # (visit row, student, companions, suggestions, report id or None)
            (row, student, companions, suggestions, None if report is None else next(report_ids))
            for row, student, companions, suggestions, report in self.visits
        ]
        visit_ids = values_write(Visit, VISIT_COLUMNS, [(*row, report) for row, *_, report in written])
        # (visit id, visit row, student, companions, suggestions, report id or None)
        written = [(pk, *rest) for pk, rest in zip(visit_ids, written, strict=True)]
        values_write(
            Visit.students.through, ("visit_id", "student_id"), [(pk, student) for pk, _, student, *_ in written]
        )
        values_write(
            Visit.companions.through,
            ("visit_id", "user_id"),
            [(pk, user) for pk, _, _, companions, *_ in written for user in companions],
        )
        values_write(
            SafetyReport.students.through,
            ("safetyreport_id", "student_id"),
            [(report, student) for *_, student, _, _, report in written if report is not None],
        )
        values_write(
            SafetyReport.companions.through,
            ("safetyreport_id", "user_id"),
            [(report, user) for *_, companions, _, report in written if report is not None for user in companions],
        )
        suggestions = [
            (
                pk,
                row[0],
                text,
                reply,
                to_school,
                timezone.localdate(row[2]),
                FeedbackStatus.OPEN if to_school else FeedbackStatus.ON_SITE,
                row[11] == SUBMITTED,
                uuid4_text(self.ids),
            )
            for pk, row, _, _, items, _ in written
            for text, reply, to_school in items
        ]
        values_write(
            Suggestion,
            (
                "visit_id",
                "school_id",
                "text",
                "reply",
                "to_school",
                "raised_on",
                "status",
                "visit_submitted",
                "public_id",
            ),
            suggestions,
        )
        self.summary.visits += len(self.visits)
        self.summary.safety_reports += len(reports)
        self.summary.suggestions += len(suggestions)
        self.summary.open_suggestions += sum(1 for s in suggestions if s[4])
        self.visits.clear()


def _today_on_the_demo_board(rng: random.Random, writer: _Writer, now: datetime.datetime) -> None:
    """In the demo school (the demo school admin's), two teachers are out visiting now and a third
    is past due: the overdue sweep marks it and notifies the school admins, as it would in service."""
    admin = User.objects.filter(username="school", role=Role.SCHOOL_ADMIN).select_related("school").first()
    if admin is None or admin.school is None:
        return
    school = admin.school
    teachers = list(
        User.objects.filter(school=school, role=Role.TEACHER, is_active=True)
        .exclude(username__in=("teacher", "head"))
        .order_by("pk")[:3]
    )
    pupils = list(Student.objects.filter(school=school, status=Student.Status.ACTIVE).order_by("pk")[:40])
    if len(teachers) < 3 or not pupils:
        return
    reports = []
    for teacher, minutes_ago, expected in ((teachers[0], 25, 60), (teachers[1], 50, 90), (teachers[2], 170, 60)):
        pupil = rng.choice(pupils)
        start = now - datetime.timedelta(minutes=minutes_ago)
        report = SafetyReport(
            school=school,
            teacher=teacher,
            address=pupil.address or "学生家中",
            planned_start=start,
            expected_minutes=expected,
            phone=teacher.phone or "13800000000",
            due_at=start + datetime.timedelta(minutes=expected + school.safety_grace_minutes),
        )
        reports.append((report, pupil))
    rows_write(SafetyReport, [report for report, _ in reports])
    rows_write(
        SafetyReport.students.through,
        [SafetyReport.students.through(safetyreport_id=report.pk, student_id=pupil.pk) for report, pupil in reports],
    )
    writer.summary.safety_reports += len(reports)
    safety_reports_mark_overdue(now=now)
