"""Reads for the teacher's pages: each student's visit status for the current phase."""

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Q
from django.utils import timezone

from schools.models import AuditEvent, Campaign, Phase, SchoolClass, SchoolYear, User
from students.models import IN_HOME_VISITS_REQUIRED, REVISIT_CATEGORIES, SPECIAL_CATEGORIES, Student
from students.selectors import teacher_classes
from visits.models import Method, Visit
from visits.periods import Window, campaign_windows, counted_window, school_year_window, window_of_day


class VisitStatus:
    NOT_VISITED = "not_visited"
    VISITED = "visited"
    NEEDS_REVISIT = "needs_revisit"

    LABELS = {NOT_VISITED: "未访", VISITED: "已访", NEEDS_REVISIT: "需再访"}
    TONES = {NOT_VISITED: "secondary", VISITED: "success", NEEDS_REVISIT: "danger"}


@dataclass
class StudentStatus:
    student: Student
    status: str
    visits: int
    in_home: int
    categories: list[str]
    visited: bool = False  # 已走访 in the period the statistics count the student for today

    @property
    def label(self) -> str:
        return VisitStatus.LABELS[self.status]

    @property
    def tone(self) -> str:
        return VisitStatus.TONES[self.status]

    @property
    def is_special(self) -> bool:
        return any(code in SPECIAL_CATEGORIES for code in self.categories)


@dataclass
class Period:
    """Today's campaign, phase and school year: what every status is counted against. ``windows``
    are the campaign's periods (``visits.periods``), the definitions the statistics count with."""

    today: datetime.date
    campaign: Campaign | None
    phase: Phase | None
    year: SchoolYear | None
    windows: list[Window] = field(default_factory=list)

    @classmethod
    def on(cls, today: datetime.date | None = None) -> "Period":
        today = today or timezone.localdate()
        campaign = Campaign.current(today)
        windows = campaign_windows(campaign) if campaign else []
        phase_window = window_of_day(windows, today)
        return cls(
            today=today,
            campaign=campaign,
            phase=phase_window.phase if phase_window else None,
            year=SchoolYear.current(today),
            windows=windows,
        )


def visit_counts(students: list[Student], *, period: Period) -> dict[int, dict[str, int]]:
    """Per student id: submitted visits in each of the campaign's periods (``w<index>``), and
    visits and in-home visits in the school year the 2-in-home rule counts in. One grouped query
    over the visit–student table, whatever the number of students."""
    through = Visit.students.through
    annotations = {f"w{w.index}": Count("visit", filter=w.q("visit__")) for w in period.windows}
    if period.campaign is not None:
        year_start, year_end = school_year_window(period.campaign, period.today)
        year_filter = Q(visit__visited_at__gte=year_start, visit__visited_at__lt=year_end)
    elif period.year is not None:
        year_filter = Q(visit__visited_at__date__gte=period.year.start, visit__visited_at__date__lte=period.year.end)
    else:
        year_filter = Q()
    annotations["in_year"] = Count("visit", filter=year_filter)
    annotations["in_home"] = Count("visit", filter=year_filter & Q(visit__method=Method.IN_HOME))
    rows = (
        through.objects.filter(visit__status=Visit.Status.SUBMITTED, student_id__in=[s.pk for s in students])
        .values("student_id")
        .annotate(**annotations)
        .order_by()
    )
    return {row["student_id"]: row for row in rows}


def student_statuses(
    students: list[Student], *, today: datetime.date | None = None, period: Period | None = None
) -> list[StudentStatus]:
    """未访 / 已访 / 需再访 for each student (categories must be prefetched).

    ``visited`` is the student's 已走访 in the period the statistics count it for today
    (``visits.periods.counted_window``: the revisit round for a focus or special student while the
    round runs, else the whole campaign, days between phases included) — the class's row of that
    period counts exactly these students.

    - 需再访: a special student with fewer than two in-home visits this school year, once visited
      this school year (DESIGN §3).
    - 已访: ``visited``.
    - 未访: neither.
    """
    period = period or Period.on(today)
    today = period.today
    counts = visit_counts(students, period=period)
    result = []
    for student in students:
        row = counts.get(student.pk, {})
        categories = student.categories_on(today)
        focus = any(code in REVISIT_CATEGORIES for code in categories)
        special = any(code in SPECIAL_CATEGORIES for code in categories)
        window = counted_window(period.windows, today=today, revisit_student=focus)
        visited = window is not None and row.get(f"w{window.index}", 0) > 0
        if special and row.get("in_year", 0) and row.get("in_home", 0) < IN_HOME_VISITS_REQUIRED:
            status = VisitStatus.NEEDS_REVISIT
        elif visited:
            status = VisitStatus.VISITED
        else:
            status = VisitStatus.NOT_VISITED
        result.append(
            StudentStatus(
                student=student,
                status=status,
                visits=row.get("in_year", 0),
                in_home=row.get("in_home", 0),
                categories=categories,
                visited=visited,
            )
        )
    return result


@dataclass
class ClassStatuses:
    school_class: SchoolClass
    rows: list[StudentStatus]


def my_students(
    user: User, *, period: Period, query: str = "", status: str = "", category: str = ""
) -> list[ClassStatuses]:
    """「我的学生」: the teacher's classes with each student's status, filtered as asked."""
    classes = teacher_classes(user)
    everyone = [student for school_class in classes for student in school_class.active_students]
    by_student = {row.student.pk: row for row in student_statuses(everyone, period=period)}
    query = query.strip().upper()
    result = []
    for school_class in classes:
        rows = [by_student[s.pk] for s in school_class.active_students]
        if query:
            rows = [r for r in rows if query in r.student.name or r.student.student_number == query]
        if status:
            rows = [r for r in rows if r.status == status]
        if category:
            rows = [r for r in rows if category in r.categories]
        result.append(ClassStatuses(school_class=school_class, rows=rows))
    return result


def visits_of_student(student: Student, user: User) -> list[Visit]:
    """The student's visits that the user may see, newest first, with their people."""
    return list(
        Visit.objects.visible_to(user)
        .filter(students=student)
        .select_related("lead_teacher", "phase")
        .prefetch_related("companions")
        .order_by("-visited_at")
    )


def student_access_events(student: Student):
    """The audit rows about one student's record, newest first (DESIGN §8, issue 14): views of the
    student's page (and of this history), views and prints of the student's visits, and exports of
    the student's school's visits not filtered to another class. Matched on ``object_id``, which the
    (object_id, at) index serves; the visit ids are one query."""
    visit_ids = [
        str(public_id) for public_id in Visit.objects.filter(students=student).values_list("public_id", flat=True)
    ]
    exports = Q(
        object_type="visits.Visit", action=AuditEvent.Action.EXPORT, object_id=f"school:{student.school_id}"
    ) & (Q(detail__filters__school_class__isnull=True) | Q(detail__filters__school_class=student.school_class_id))
    return (
        AuditEvent.objects.filter(
            Q(object_type="students.Student", object_id=str(student.public_id), action=AuditEvent.Action.VIEW)
            | Q(object_type="visits.Visit", object_id__in=visit_ids, action=AuditEvent.Action.VIEW)
            | exports
        )
        .select_related("user__school", "user__zone")
        .order_by("-at", "-pk")
    )
