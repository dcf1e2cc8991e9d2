"""Reads for the teacher's pages: each student's visit status for the current phase."""

import datetime
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from schools.models import Campaign, Phase, SchoolClass, SchoolYear, User
from students.models import IN_HOME_VISITS_REQUIRED, REVISIT_CATEGORIES, SPECIAL_CATEGORIES, Student
from students.selectors import teacher_classes
from visits.models import Method, Visit


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

    @property
    def label(self) -> str:
        return VisitStatus.LABELS[self.status]

    @property
    def tone(self) -> str:
        return VisitStatus.TONES[self.status]

    @property
    def is_special(self) -> bool:
        return any(code in SPECIAL_CATEGORIES for code in self.categories)


def visit_counts(students: list[Student], *, phase: Phase | None, campaign: Campaign | None, year: SchoolYear | None):
    """Per student: submitted visits in the phase, in the campaign, and in-home visits this school
    year. One grouped query over the visit–student table, whatever the number of students."""
    through = Visit.students.through
    submitted = Q(visit__status=Visit.Status.SUBMITTED)
    year_filter = Q(visit__visited_at__date__gte=year.start, visit__visited_at__date__lte=year.end) if year else Q()
    annotations = {
        "in_home": Count("visit", filter=year_filter & Q(visit__method=Method.IN_HOME)),
        "in_year": Count("visit", filter=year_filter),
    }
    if phase is not None:
        annotations["in_phase"] = Count("visit", filter=Q(visit__phase=phase))
    if campaign is not None:
        annotations["in_campaign"] = Count("visit", filter=Q(visit__phase__campaign=campaign))
    rows = (
        through.objects.filter(submitted, student_id__in=[s.pk for s in students])
        .values("student_id")
        .annotate(**annotations)
    )
    return {row["student_id"]: row for row in rows}


@dataclass
class Period:
    """Today's campaign, phase and school year: what every status is counted against."""

    today: datetime.date
    campaign: Campaign | None
    phase: Phase | None
    year: SchoolYear | None

    @classmethod
    def on(cls, today: datetime.date | None = None) -> "Period":
        today = today or timezone.localdate()
        campaign = Campaign.current(today)
        phase = campaign.phase_on(today) if campaign else None
        return cls(today=today, campaign=campaign, phase=phase, year=SchoolYear.current(today))


def student_statuses(
    students: list[Student], *, today: datetime.date | None = None, period: Period | None = None
) -> list[StudentStatus]:
    """未访 / 已访 / 需再访 for each student (categories must be prefetched).

    - 需再访: a special student with fewer than two in-home visits this school year, once visited.
    - 已访: visited in the current phase when the phase is a revisit round and the student is a
      focus or special student; otherwise visited at any time in this campaign.
    - 未访: neither.
    """
    period = period or Period.on(today)
    today, campaign, phase, year = period.today, period.campaign, period.phase, period.year
    counts = visit_counts(students, phase=phase, campaign=campaign, year=year)
    revisit_round = phase is not None and phase.kind == Phase.Kind.REVISIT
    result = []
    for student in students:
        row = counts.get(student.pk, {})
        categories = student.categories_on(today)
        focus = any(code in REVISIT_CATEGORIES for code in categories)
        special = any(code in SPECIAL_CATEGORIES for code in categories)
        visited = row.get("in_phase", 0) if revisit_round and focus else row.get("in_campaign", 0)
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
