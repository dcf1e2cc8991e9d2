"""The care log (关爱台账: 每日一问 / 每周一见; DESIGN §3, §6).

For each active student with an ``orphan`` or ``unsupported`` category in force, the head teacher
records an ask on every school day (``ledgers.calendar``) and the school admin a meeting every week
that has a school day. An ask is due on each school day from the start of the school year (or of the
category) to the last school day before today; a meeting for each such week that has ended. Today's
ask and this week's meeting are open, not missed.

Compliance (for the statistics, DESIGN §7): asks done ÷ asks due, meetings done ÷ meetings due,
each over the same period; done means recorded (an ask marked 请假 / 未到校 is recorded).
"""

import bisect
import datetime
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from ledgers.calendar import SchoolCalendar, school_calendar, school_calendars, week_start
from ledgers.care_models import CareAsk, CareMeeting
from ledgers.models import rate
from schools.models import AuditEvent, Role, School, SchoolClass, User
from schools.services import audit_event_record
from students.models import CARE_CATEGORIES, Student, StudentCategory

ASK_OBJECT_TYPE = "ledgers.CareAsk"
MEETING_OBJECT_TYPE = "ledgers.CareMeeting"
LOG_OBJECT_TYPE = "ledgers.CareLog"
# A head teacher may record an ask late (no signal that evening), up to this many days back.
LATE_RECORD_DAYS = 7
REASON_MAX = 200
NOTE_MAX = 300


# --- reads -------------------------------------------------------------------------------------


def care_students(school_ids, *, today: datetime.date):
    """Active students of the schools with a care category in force today (a queryset)."""
    in_force = StudentCategory.objects.in_force_on(today).filter(category__in=CARE_CATEGORIES)
    return Student.objects.active().filter(school_id__in=school_ids, pk__in=in_force.values("student_id"))


def _care_categories():
    return Prefetch(
        "categories", queryset=StudentCategory.objects.filter(category__in=CARE_CATEGORIES), to_attr="care_rows"
    )


@dataclass
class CareChild:
    student: Student
    head_teacher: User | None
    days_due: list[datetime.date]
    asks: dict[datetime.date, CareAsk]
    weeks_due: list[datetime.date]
    meetings: dict[datetime.date, CareMeeting]
    today_ask: CareAsk | None = None
    this_week_meeting: CareMeeting | None = None

    @property
    def missed_days(self) -> list[datetime.date]:
        return [day for day in self.days_due if day not in self.asks]

    @property
    def missed_weeks(self) -> list[datetime.date]:
        return [week for week in self.weeks_due if week not in self.meetings]

    @property
    def asks_done(self) -> int:
        return len(self.days_due) - len(self.missed_days)

    @property
    def meetings_done(self) -> int:
        return len(self.weeks_due) - len(self.missed_weeks)


@dataclass
class Compliance:
    asks_due: int = 0
    asks_done: int = 0
    meetings_due: int = 0
    meetings_done: int = 0
    children: int = 0

    @property
    def asks_missed(self) -> int:
        return self.asks_due - self.asks_done

    @property
    def meetings_missed(self) -> int:
        return self.meetings_due - self.meetings_done

    @property
    def ask_rate(self):
        return rate(self.asks_done, self.asks_due)

    @property
    def meeting_rate(self):
        return rate(self.meetings_done, self.meetings_due)

    def merge(self, other: "Compliance") -> None:
        """Add another unit's (or one child's) counts to these."""
        self.children += other.children
        self.asks_due += other.asks_due
        self.asks_done += other.asks_done
        self.meetings_due += other.meetings_due
        self.meetings_done += other.meetings_done

    def add(self, child: CareChild) -> None:
        self.children += 1
        self.asks_due += len(child.days_due)
        self.asks_done += child.asks_done
        self.meetings_due += len(child.weeks_due)
        self.meetings_done += child.meetings_done


@dataclass
class ClassCare:
    school_class: SchoolClass | None
    head_teacher: User | None
    compliance: Compliance = field(default_factory=Compliance)
    missed_last_day: list[Student] = field(default_factory=list)


@dataclass
class CareLog:
    school: School
    today: datetime.date
    start: datetime.date
    calendar: SchoolCalendar
    today_is_school_day: bool
    last_school_day: datetime.date | None
    children: list[CareChild]
    classes: list[ClassCare]
    compliance: Compliance

    @property
    def missed_last_day(self) -> list[CareChild]:
        day = self.last_school_day
        return [c for c in self.children if day is not None and day in c.days_due and day not in c.asks]


def _in_force(rows: list[StudentCategory], day: datetime.date) -> bool:
    return any(row.in_force_on(day) for row in rows)


def _child(
    student: Student,
    *,
    calendar: SchoolCalendar,
    school_days: list[datetime.date],
    start: datetime.date,
    today: datetime.date,
    asks: dict,
    meetings: dict,
) -> CareChild:
    rows = student.care_rows
    days_due = [d for d in school_days if start <= d < today and _in_force(rows, d)]
    this_week = week_start(today)
    weeks = sorted({week_start(d) for d in days_due if week_start(d) < this_week})
    head = student.school_class.head_teacher if student.school_class_id else None
    return CareChild(
        student=student,
        head_teacher=head,
        days_due=days_due,
        asks=asks,
        weeks_due=weeks,
        meetings=meetings,
        today_ask=asks.get(today),
        this_week_meeting=meetings.get(this_week),
    )


def care_log(
    school: School,
    *,
    user: User | None = None,
    today: datetime.date | None = None,
    start: datetime.date | None = None,
    class_id: int | None = None,
) -> CareLog:
    """The school's care log from ``start`` (default: the school year's first term day) to today,
    with each child's missed days and weeks, per class and for the school. A teacher sees only the
    children of the classes they head. Five queries whatever the number of children or days."""
    today = today or timezone.localdate()
    calendar = school_calendar(school)
    start = start or calendar.year_start(today)
    school_days = calendar.school_days(start, today)
    students = care_students([school.pk], today=today).select_related("school_class__head_teacher")
    if user is not None and user.role == Role.TEACHER:
        students = students.filter(school_class__head_teacher=user)
    if class_id:
        students = students.filter(school_class_id=class_id)
    students = list(students.prefetch_related(_care_categories()))
    asks, meetings = _records([s.pk for s in students], start=start, today=today)
    children = [
        _child(
            s,
            calendar=calendar,
            school_days=school_days,
            start=start,
            today=today,
            asks=asks[s.pk],
            meetings=meetings[s.pk],
        )
        for s in students
    ]
    last_day = calendar.last_school_day_before(today)
    by_class: dict[int | None, ClassCare] = {}
    compliance = Compliance()
    for child in children:
        key = child.student.school_class_id
        group = by_class.setdefault(
            key, ClassCare(school_class=child.student.school_class, head_teacher=child.head_teacher)
        )
        group.compliance.add(child)
        compliance.add(child)
        if last_day is not None and last_day in child.days_due and last_day not in child.asks:
            group.missed_last_day.append(child.student)
    classes = sorted(
        by_class.values(),
        key=lambda c: (c.school_class is None, (c.school_class.grade, c.school_class.number) if c.school_class else ()),
    )
    return CareLog(
        school=school,
        today=today,
        start=start,
        calendar=calendar,
        today_is_school_day=calendar.is_school_day(today),
        last_school_day=last_day,
        children=children,
        classes=classes,
        compliance=compliance,
    )


def _records(student_ids: list[int], *, start: datetime.date, today: datetime.date):
    asks: dict[int, dict] = defaultdict(dict)
    meetings: dict[int, dict] = defaultdict(dict)
    for ask in CareAsk.objects.filter(student_id__in=student_ids, day__gte=start, day__lte=today).select_related(
        "recorded_by"
    ):
        asks[ask.student_id][ask.day] = ask
    for meeting in CareMeeting.objects.filter(
        student_id__in=student_ids, week_start__gte=week_start(start), week_start__lte=today
    ):
        meetings[meeting.student_id][meeting.week_start] = meeting
    return asks, meetings


def care_compliance_by_school(
    school_ids: list[int], *, today: datetime.date | None = None, start: datetime.date | None = None
) -> dict[int, Compliance]:
    """Care-log compliance per school, for the statistics engine and the county's pages: the same
    rule as ``care_log`` over the school days from ``start`` (default: each school's first term day
    of the year) to the day before ``today``; five queries for any number of schools.

    Shape: {school id: Compliance(asks_due, asks_done, meetings_due, meetings_done, children)}."""
    return care_compliance_by_unit(school_ids, today=today, start=start)[0]


def care_compliance_by_unit(
    school_ids: list[int], *, today: datetime.date | None = None, start: datetime.date | None = None
) -> tuple[dict[int, Compliance], dict[int, Compliance]]:
    """``care_compliance_by_school`` and the same per class (the class the child is on the roster
    of; a child without a class counts in the school only), in the same five queries.

    Shape: ({school id: Compliance}, {class id: Compliance})."""
    today = today or timezone.localdate()
    calendars = school_calendars(school_ids)
    students = list(
        care_students(school_ids, today=today)
        .select_related("school_class__head_teacher")
        .prefetch_related(_care_categories())
    )
    starts = {sid: start or calendars[sid].year_start(today) for sid in school_ids}
    earliest = min(starts.values(), default=today)
    asks, meetings = _records([s.pk for s in students], start=earliest, today=today)
    result = {sid: Compliance() for sid in school_ids}
    by_class: dict[int, Compliance] = defaultdict(Compliance)
    days_cache: dict[int, list[datetime.date]] = {}
    for student in students:
        calendar = calendars[student.school_id]
        if student.school_id not in days_cache:
            days_cache[student.school_id] = calendar.school_days(starts[student.school_id], today)
        child = _child(
            student,
            calendar=calendar,
            school_days=days_cache[student.school_id],
            start=starts[student.school_id],
            today=today,
            asks=asks[student.pk],
            meetings=meetings[student.pk],
        )
        result[student.school_id].add(child)
        if student.school_class_id is not None:
            by_class[student.school_class_id].add(child)
    return result, dict(by_class)


def care_compliance_by_periods(
    school_ids: list[int], periods: dict[object, tuple[datetime.date | None, datetime.date]]
) -> dict[object, tuple[dict[int, Compliance], dict[int, Compliance]]]:
    """``care_compliance_by_unit`` for several periods at once, each ``key: (start, today)`` (start
    None: each school's first term day of the year holding ``today``), from one read of the
    children, their categories and their records: six queries for any number of schools and
    periods (the statistics engine's one call per run).

    The same rule as ``_child`` (a test holds the two equal on random calendars, categories and
    records), counted by intervals instead of day by day: a child's due days are the school days
    inside the spans where a care category is in force (two binary searches in the school's sorted
    school days per span), its due weeks the distinct weeks of those days before ``today``'s week,
    and only its own asks and meetings are looked up. Rows are read as tuples, not model
    instances, so a county of 10,000 children takes a fraction of a second.

    Shape: {key: ({school id: Compliance}, {class id: Compliance})}."""
    if not periods:
        return {}
    result: dict = {key: ({sid: Compliance() for sid in school_ids}, defaultdict(Compliance)) for key in periods}
    calendars = school_calendars(school_ids)
    latest = max(today for _, today in periods.values())
    starts = {
        key: {sid: start or calendars[sid].year_start(today) for sid in school_ids}
        for key, (start, today) in periods.items()
    }
    earliest = min((min(by.values(), default=latest) for by in starts.values()), default=latest)
    candidates = StudentCategory.objects.filter(category__in=CARE_CATEGORIES, start__lte=latest)
    children = Student.objects.active().filter(school_id__in=school_ids, pk__in=candidates.values("student_id"))
    students = list(children.values_list("pk", "school_id", "school_class_id"))
    spans: dict[int, list[tuple[datetime.date, datetime.date | None]]] = defaultdict(list)
    for student_id, start, end in StudentCategory.objects.filter(
        category__in=CARE_CATEGORIES, student_id__in=children.values("pk")
    ).values_list("student_id", "start", "end"):
        spans[student_id].append((start, end))
    asks: dict[int, set[datetime.date]] = defaultdict(set)
    for student_id, day in CareAsk.objects.filter(
        student_id__in=children.values("pk"), day__gte=earliest, day__lte=latest
    ).values_list("student_id", "day"):
        asks[student_id].add(day)
    meetings: dict[int, set[datetime.date]] = defaultdict(set)
    for student_id, week in CareMeeting.objects.filter(
        student_id__in=children.values("pk"), week_start__gte=week_start(earliest), week_start__lte=latest
    ).values_list("student_id", "week_start"):
        meetings[student_id].add(week)
    days = {sid: _SchoolDays(calendars[sid].school_days(earliest, latest)) for sid in {s[1] for s in students}}
    one_day = datetime.timedelta(days=1)
    for key, (_, today) in periods.items():
        by_school, by_class = result[key]
        this_week = week_start(today)
        for student_id, school_id, class_id in students:
            own = spans[student_id]
            if not any(start <= today and (end is None or end >= today) for start, end in own):
                continue  # a child of the log on ``today`` only, as care_students says
            first = starts[key][school_id]
            wanted = [(max(start, first), min(end, today - one_day) if end else today - one_day) for start, end in own]
            compliance = days[school_id].compliance(
                wanted, asks=asks.get(student_id, ()), meetings=meetings.get(student_id, ()), this_week=this_week
            )
            by_school[school_id].merge(compliance)
            if class_id is not None:
                by_class[class_id].merge(compliance)
    return {key: (by_school, dict(by_class)) for key, (by_school, by_class) in result.items()}


class _SchoolDays:
    """A school's sorted school days, with each day's week numbered (0, 1, … in order), for
    counting a child's due days and weeks by interval (``care_compliance_by_periods``)."""

    def __init__(self, days: list[datetime.date]) -> None:
        self.days = days
        self.index = {day: position for position, day in enumerate(days)}
        self.week_of: list[int] = []  # the ordinal of the week of days[i]
        self.week_number: dict[datetime.date, int] = {}  # week start -> ordinal
        for day in days:
            self.week_number.setdefault(week_start(day), len(self.week_number))
            self.week_of.append(self.week_number[week_start(day)])

    def compliance(
        self,
        spans: list[tuple[datetime.date, datetime.date]],
        *,
        asks: Collection[datetime.date],
        meetings: Collection[datetime.date],
        this_week: datetime.date,
    ) -> "Compliance":
        """One child's Compliance: ``spans`` are the inclusive date ranges its category is in force
        within the period (empty ones allowed); asks and meetings its recorded days and weeks."""
        ranges = _merged(
            (bisect.bisect_left(self.days, start), bisect.bisect_right(self.days, end))
            for start, end in spans
            if start <= end
        )
        before_week = bisect.bisect_left(self.days, this_week)  # a day before this week's Monday
        week_ranges = _merged(
            (self.week_of[i], self.week_of[min(j, before_week) - 1] + 1) for i, j in ranges if min(j, before_week) > i
        )
        due = sum(j - i for i, j in ranges)
        asks_done = 0
        for day in asks:
            position = self.index.get(day)
            if position is not None and any(i <= position < j for i, j in ranges):
                asks_done += 1
        meetings_done = 0
        for week in meetings:
            number = self.week_number.get(week)
            if number is not None and any(i <= number < j for i, j in week_ranges):
                meetings_done += 1
        return Compliance(
            asks_due=due,
            asks_done=asks_done,
            meetings_due=sum(j - i for i, j in week_ranges),
            meetings_done=meetings_done,
            children=1,
        )


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open integer ranges, sorted, overlapping or touching ones joined, empty ones dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass
class TodayCard:
    """The head teacher's 「今日每日一问」 on the home page."""

    today: datetime.date
    is_school_day: bool
    children: list[CareChild]
    unknown_year: bool

    @property
    def open_count(self) -> int:
        return sum(1 for c in self.children if c.today_ask is None)


def care_today(user: User, *, today: datetime.date | None = None) -> TodayCard | None:
    """The care children of the classes the user heads with today's ask, or None when the user heads
    no class with a care child. Four queries."""
    today = today or timezone.localdate()
    if user.role != Role.TEACHER or not user.school_id:
        return None
    students = list(
        care_students([user.school_id], today=today)
        .filter(school_class__head_teacher=user)
        .select_related("school_class")
        .order_by("school_class__grade", "school_class__number", "name")
    )
    if not students:
        return None
    calendar = school_calendar(user.school_id)
    asks = {a.student_id: a for a in CareAsk.objects.filter(student__in=students, day=today)}
    school_day = calendar.is_school_day(today)
    children = [
        CareChild(
            student=s,
            head_teacher=user,
            days_due=[],
            asks={},
            weeks_due=[],
            meetings={},
            today_ask=asks.get(s.pk),
        )
        for s in students
    ]
    return TodayCard(
        today=today, is_school_day=school_day, children=children, unknown_year=bool(calendar.unknown_years)
    )


def care_students_visible_to(user: User, *, today: datetime.date | None = None):
    """The care students whose log the user may see: the head teacher their class's, a school admin
    the school's, zone admins their zone's, the bureau roles every one (DESIGN §2, §8)."""
    today = today or timezone.localdate()
    in_force = StudentCategory.objects.in_force_on(today).filter(category__in=CARE_CATEGORIES)
    students = Student.objects.filter(pk__in=in_force.values("student_id"))
    if not user.is_authenticated or not user.is_active:
        return students.none()
    if user.role == Role.TEACHER:
        return students.filter(school_class__head_teacher=user)
    return students.visible_to(user)


def care_log_audit(*, request, object_id: str, whole: bool, what: str) -> None:
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        request=request,
        object_type=LOG_OBJECT_TYPE,
        object_id=object_id,
        detail={"full": whole, "what": what},
    )


# --- writes ------------------------------------------------------------------------------------


def care_ask_record(
    *,
    student: Student,
    day: datetime.date,
    outcome: str,
    acting_user: User,
    reason: str = "",
    note: str = "",
) -> CareAsk:
    """Record (or correct) the day's ask for a care student: by the head teacher of the student's
    class or the school admin, on a day from a week back to today while a care category is in
    force. 学生请假 / 未到校 need a reason. Raises ValidationError (field → message)."""
    reason = (reason or "").strip()
    note = (note or "").strip()
    today = timezone.localdate()
    errors: dict[str, str] = {}
    if not _may_ask(acting_user, student):
        raise ValidationError("只有这名学生的班主任或学校管理员可以记录每日一问。")
    if outcome not in CareAsk.Outcome.values:
        errors["outcome"] = "请选择情况：已问（当面、电话或微信）、学生请假或未到校。"
    elif outcome not in CareAsk.ASKED and not reason:
        errors["reason"] = "学生请假或未到校，请填写原因。"
    if day > today:
        errors["day"] = "不能记录今天以后的日期。"
    elif day < today - datetime.timedelta(days=LATE_RECORD_DAYS):
        errors["day"] = f"只能补记最近 {LATE_RECORD_DAYS} 天的每日一问。"
    elif not StudentCategory.objects.in_force_on(day).filter(student=student, category__in=CARE_CATEGORIES).exists():
        errors["day"] = f"{student.name}在 {day:%Y-%m-%d} 不是关爱对象。"
    if len(reason) > REASON_MAX:
        errors["reason"] = f"原因不能超过 {REASON_MAX} 个字（现有 {len(reason)} 个）。"
    if len(note) > NOTE_MAX:
        errors["note"] = f"备注不能超过 {NOTE_MAX} 个字（现有 {len(note)} 个）。"
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        ask, created = CareAsk.objects.select_for_update().get_or_create(
            student=student,
            day=day,
            defaults={"school_id": student.school_id, "outcome": outcome, "recorded_by": acting_user},
        )
        ask.outcome = outcome
        ask.reason = reason if outcome not in CareAsk.ASKED else ""
        ask.note = note
        ask.recorded_by = acting_user
        ask.recorded_at = timezone.now()
        ask.full_clean()
        ask.save()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type=ASK_OBJECT_TYPE,
            object_id=str(student.public_id),
            detail={"event": "recorded" if created else "corrected", "day": day.isoformat(), "outcome": outcome},
        )
    return ask


def care_meeting_record(
    *, student: Student, met_on: datetime.date, acting_user: User, place: str = "", note: str = ""
) -> CareMeeting:
    """Record the week's meeting (每周一见) with a care student: the school admin of the student's
    school, for a day up to today. A second record in the same week replaces the first."""
    place = (place or "").strip()
    note = (note or "").strip()
    if acting_user.role != Role.SCHOOL_ADMIN or acting_user.school_id != student.school_id:
        raise ValidationError("只有本校的学校管理员（校长）可以记录每周一见。")
    errors: dict[str, str] = {}
    today = timezone.localdate()
    if met_on is None:
        errors["met_on"] = "请填写见面日期。"
    elif met_on > today:
        errors["met_on"] = "见面日期不能晚于今天。"
    elif met_on < today - datetime.timedelta(days=60):
        errors["met_on"] = "只能补记最近两个月的每周一见。"
    if len(place) > 100:
        errors["place"] = "地点不能超过 100 个字。"
    if len(note) > NOTE_MAX:
        errors["note"] = f"备注不能超过 {NOTE_MAX} 个字（现有 {len(note)} 个）。"
    if errors:
        raise ValidationError(errors)
    week = week_start(met_on)
    with transaction.atomic():
        meeting, created = CareMeeting.objects.select_for_update().get_or_create(
            student=student,
            week_start=week,
            defaults={"school_id": student.school_id, "met_on": met_on, "recorded_by": acting_user},
        )
        meeting.met_on = met_on
        meeting.place = place
        meeting.note = note
        meeting.recorded_by = acting_user
        meeting.recorded_at = timezone.now()
        meeting.full_clean()
        meeting.save()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type=MEETING_OBJECT_TYPE,
            object_id=str(student.public_id),
            detail={"event": "recorded" if created else "corrected", "met_on": met_on.isoformat()},
        )
    return meeting


def _may_ask(user: User, student: Student) -> bool:
    if not user.is_authenticated or user.school_id != student.school_id:
        return False
    if user.role == Role.SCHOOL_ADMIN:
        return True
    return (
        user.role == Role.TEACHER
        and student.school_class_id is not None
        and (student.school_class.head_teacher_id == user.pk)
    )
