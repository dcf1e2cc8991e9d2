"""The work ledger (工作台账, DESIGN §1, §6): every active student × each phase of the campaign
with its visit status, per class and per school, and its export in the 台账 layout.

Phases: the first round (第一轮全员家访) must reach every active student; the revisit round
(第二轮重点回访) the focus and special students (``REVISIT_CATEGORIES``); special students need
``IN_HOME_VISITS_REQUIRED`` in-home visits in the school year (DESIGN §3). A student's phase status
reads the submitted visits whose ``phase`` is that phase (a visit belongs to the phase holding its
date, DESIGN §1). "Must still act on" (待办) means: not visited in a phase that has begun and that
the student is due in, or a special student short of in-home visits.

Every read here is a fixed number of queries per page (or per chunk of an export), whatever the
number of students: the statuses are correlated subqueries of one student query.
"""

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from schools.exports import LedgerSheet
from schools.models import Campaign, Phase, School, SchoolClass, SchoolYear, TeachingAssignment, User
from schools.privacy import mask_id_number
from students.models import (
    IN_HOME_VISITS_REQUIRED,
    REVISIT_CATEGORIES,
    SPECIAL_CATEGORIES,
    Student,
    StudentCategory,
)
from visits.models import Method, Visit

EXPORT_CHUNK_SIZE = 2000
STATUS_TODO = "todo"
STATUS_DONE = "done"
STATUS_FIRST_TODO = "first_todo"
STATUS_REVISIT_TODO = "revisit_todo"
STATUS_CHOICES = [
    ("", "全部"),
    (STATUS_TODO, "待办（未完成）"),
    (STATUS_FIRST_TODO, "第一轮未走访"),
    (STATUS_REVISIT_TODO, "第二轮应回访未回访"),
    (STATUS_DONE, "已完成"),
]
GROUP_FOCUS = "revisit"
GROUP_SPECIAL = "special"


@dataclass(frozen=True)
class CampaignPhases:
    """The phases of the ledger, the school year the in-home rule counts in, and today."""

    campaign: Campaign | None
    first_round: Phase | None
    revisit: Phase | None
    year_start: datetime.date | None
    year_end: datetime.date | None
    today: datetime.date

    def has_begun(self, phase: Phase | None) -> bool:
        return phase is not None and phase.start <= self.today


def campaign_phases(today: datetime.date | None = None) -> CampaignPhases:
    """The current campaign's first-round and revisit phases (two queries)."""
    today = today or timezone.localdate()
    campaign = Campaign.current(today)
    phases = {phase.kind: phase for phase in campaign.phases.all()} if campaign else {}
    year = (campaign.school_year if campaign and campaign.school_year_id else None) or SchoolYear.current(today)
    return CampaignPhases(
        campaign=campaign,
        first_round=phases.get(Phase.Kind.FULL_ROUND),
        revisit=phases.get(Phase.Kind.REVISIT),
        year_start=year.start if year else None,
        year_end=year.end if year else None,
        today=today,
    )


def _submitted_pairs(phase: Phase | None) -> QuerySet:
    pairs = Visit.students.through.objects.filter(student_id=OuterRef("pk"), visit__status=Visit.Status.SUBMITTED)
    if phase is None:
        return pairs.none()
    return pairs.filter(visit__phase=phase)


def _last_visit_id(phase: Phase | None) -> Subquery:
    pairs = _submitted_pairs(phase).order_by("-visit__visited_at", "-visit_id").values("visit_id")[:1]
    return Subquery(pairs, output_field=IntegerField())


def _in_force(codes) -> Exists:
    today = timezone.localdate()
    return Exists(
        StudentCategory.objects.in_force_on(today).filter(student_id=OuterRef("pk"), category__in=list(codes))
    )


def ledger_students(students: QuerySet[Student], phases: CampaignPhases) -> QuerySet[Student]:
    """``students`` (already scoped) limited to the active ones and annotated with
    ``first_visit_id`` / ``revisit_visit_id`` (the latest submitted visit of each phase or None),
    ``revisit_due`` / ``special`` (0/1), ``in_home`` (submitted in-home visits this school year) and
    ``todo`` (1 when someone must still act), ordered 待办 first, then by class and name."""
    in_home = Visit.students.through.objects.filter(
        student_id=OuterRef("pk"), visit__status=Visit.Status.SUBMITTED, visit__method=Method.IN_HOME
    )
    if phases.year_start and phases.year_end:
        in_home = in_home.filter(
            visit__visited_at__date__gte=phases.year_start, visit__visited_at__date__lte=phases.year_end
        )
    in_home_count = in_home.order_by().values("student_id").annotate(n=Count("pk")).values("n")
    todo_conditions = Q(special=1, in_home__lt=IN_HOME_VISITS_REQUIRED)
    if phases.has_begun(phases.first_round):
        todo_conditions |= Q(first_visit_id__isnull=True)
    if phases.has_begun(phases.revisit):
        todo_conditions |= Q(revisit_due=1, revisit_visit_id__isnull=True)
    return (
        students.filter(status=Student.Status.ACTIVE)
        .annotate(
            first_visit_id=_last_visit_id(phases.first_round),
            revisit_visit_id=_last_visit_id(phases.revisit),
            revisit_due=Case(When(_in_force(REVISIT_CATEGORIES), then=Value(1)), default=Value(0)),
            special=Case(When(_in_force(SPECIAL_CATEGORIES), then=Value(1)), default=Value(0)),
            in_home=Coalesce(Subquery(in_home_count, output_field=IntegerField()), Value(0)),
        )
        .annotate(todo=Case(When(todo_conditions, then=Value(1)), default=Value(0)))
        .order_by("-todo", "school_class__grade", "school_class__number", "name", "pk")
    )


def ledger_filter(
    students: QuerySet[Student],
    *,
    school_class: SchoolClass | None = None,
    teacher: User | None = None,
    status: str = "",
    category: str = "",
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
) -> QuerySet[Student]:
    """Narrow annotated ledger students. ``teacher``: the students of the classes the teacher heads
    or teaches (the people answerable for them). ``category``: a category code, or ``revisit`` /
    ``special`` for the generalised groups. Dates: the latest visit of either phase lies in the range."""
    if school_class is not None:
        students = students.filter(school_class=school_class)
    if teacher is not None:
        taught = TeachingAssignment.objects.filter(teacher=teacher).values("school_class_id")
        students = students.filter(Q(school_class__head_teacher=teacher) | Q(school_class_id__in=taught))
    if status == STATUS_TODO:
        students = students.filter(todo=1)
    elif status == STATUS_DONE:
        students = students.filter(todo=0)
    elif status == STATUS_FIRST_TODO:
        students = students.filter(first_visit_id__isnull=True)
    elif status == STATUS_REVISIT_TODO:
        students = students.filter(revisit_due=1, revisit_visit_id__isnull=True)
    if category == GROUP_FOCUS:
        students = students.filter(revisit_due=1)
    elif category == GROUP_SPECIAL:
        students = students.filter(special=1)
    elif category:
        in_force = StudentCategory.objects.in_force_on(timezone.localdate()).filter(category=category)
        students = students.filter(pk__in=in_force.values("student_id"))
    if date_from or date_to:
        visits = Visit.objects.filter(status=Visit.Status.SUBMITTED)
        if date_from:
            visits = visits.filter(visited_at__date__gte=date_from)
        if date_to:
            visits = visits.filter(visited_at__date__lte=date_to)
        pairs = Visit.students.through.objects.filter(visit__in=visits).values("student_id")
        students = students.filter(pk__in=pairs)
    return students


@dataclass
class PhaseCell:
    """A student's status in one phase: due or not, the latest visit or None."""

    due: bool
    visit: Visit | None

    @property
    def label(self) -> str:
        if not self.due:
            return "无需回访"
        return "已走访" if self.visit else "未走访"


@dataclass
class LedgerRow:
    student: Student
    first: PhaseCell
    revisit: PhaseCell
    special: bool
    in_home: int
    todo: bool
    group_label: str = ""
    teachers: list[str] = field(default_factory=list)

    @property
    def cells(self) -> list[PhaseCell]:
        return [self.first, self.revisit]

    @property
    def last_visit(self) -> Visit | None:
        visits = [cell.visit for cell in (self.first, self.revisit) if cell.visit]
        return max(visits, key=lambda visit: visit.visited_at) if visits else None

    @property
    def in_home_label(self) -> str:
        return f"{self.in_home}/{IN_HOME_VISITS_REQUIRED}" if self.special else ""


def ledger_rows(students: list[Student]) -> list[LedgerRow]:
    """Rows for annotated students (one page or one export chunk): their latest visits with the
    lead teacher in one query, their classes and schools in one each. (Joining the class or school
    into the annotated query instead makes SQLite re-run its correlated subqueries: 40× slower.)"""
    ids = {s.first_visit_id for s in students} | {s.revisit_visit_id for s in students}
    ids.discard(None)
    visits = {visit.pk: visit for visit in Visit.objects.filter(pk__in=ids).select_related("lead_teacher")}
    classes = SchoolClass.objects.in_bulk({s.school_class_id for s in students if s.school_class_id})
    schools = School.objects.in_bulk({s.school_id for s in students})
    for student in students:
        student.school_class = classes.get(student.school_class_id)
        student.school = schools[student.school_id]
    rows = []
    for student in students:
        rows.append(
            LedgerRow(
                student=student,
                first=PhaseCell(due=True, visit=visits.get(student.first_visit_id)),
                revisit=PhaseCell(due=bool(student.revisit_due), visit=visits.get(student.revisit_visit_id)),
                special=bool(student.special),
                in_home=student.in_home,
                todo=bool(student.todo),
                # Generalised for every reader (DESIGN §8): the categories are on the student's page.
                group_label="特殊学生" if student.special else "重点关注" if student.revisit_due else "",
            )
        )
    return rows


# --- the per-school roll-up by class ------------------------------------------------------------


@dataclass
class ClassRollup:
    school_class: SchoolClass
    students: int = 0
    first_visited: int = 0
    revisit_due: int = 0
    revisit_visited: int = 0
    special: int = 0
    special_met: int = 0
    teachers: list[User] = field(default_factory=list)
    participating: set[int] = field(default_factory=set)

    @property
    def first_todo(self) -> int:
        return self.students - self.first_visited

    @property
    def teachers_participating(self) -> int:
        return sum(1 for teacher in self.teachers if teacher.pk in self.participating)


def class_rollup(school: School, phases: CampaignPhases) -> list[ClassRollup]:
    """Per class of the school's current year: students, first-round visited, revisits due and
    done, special students meeting the in-home rule, the class's teachers (head teacher and
    任课) and which of them took part in a submitted visit to a student of the class. Five queries."""
    year = SchoolYear.current(phases.today)
    classes = list(
        SchoolClass.objects.filter(school=school, school_year=year)
        .select_related("head_teacher")
        .order_by("grade", "number")
    )
    by_id = {c.pk: ClassRollup(school_class=c) for c in classes}
    annotated = ledger_students(Student.objects.filter(school=school, school_class_id__in=list(by_id)), phases)
    figures = (
        annotated.order_by()
        .values("school_class_id")
        .annotate(
            n=Count("pk"),
            first=Count("pk", filter=Q(first_visit_id__isnull=False)),
            due=Count("pk", filter=Q(revisit_due=1)),
            revisited=Count("pk", filter=Q(revisit_due=1, revisit_visit_id__isnull=False)),
            special_n=Count("pk", filter=Q(special=1)),
            met=Count("pk", filter=Q(special=1, in_home__gte=IN_HOME_VISITS_REQUIRED)),
        )
    )
    for row in figures:
        rollup = by_id[row["school_class_id"]]
        rollup.students, rollup.first_visited = row["n"], row["first"]
        rollup.revisit_due, rollup.revisit_visited = row["due"], row["revisited"]
        rollup.special, rollup.special_met = row["special_n"], row["met"]
    for rollup in by_id.values():
        if rollup.school_class.head_teacher:
            rollup.teachers.append(rollup.school_class.head_teacher)
    for assignment in (
        TeachingAssignment.objects.filter(school_class_id__in=list(by_id))
        .select_related("teacher")
        .order_by("teacher__real_name")
    ):
        rollup = by_id[assignment.school_class_id]
        if all(t.pk != assignment.teacher_id for t in rollup.teachers):
            rollup.teachers.append(assignment.teacher)
    pairs = Visit.students.through.objects.filter(
        visit__status=Visit.Status.SUBMITTED, student__school_class_id__in=list(by_id)
    )
    if phases.campaign is not None:
        pairs = pairs.filter(visit__phase__campaign=phases.campaign)
    for class_id, lead in pairs.values_list("student__school_class_id", "visit__lead_teacher_id").distinct():
        by_id[class_id].participating.add(lead)
    joined = Visit.companions.through.objects.filter(visit__in=pairs.values("visit_id")).values_list(
        "visit__students__school_class_id", "user_id"
    )
    for class_id, user_id in joined.distinct():
        if class_id in by_id:
            by_id[class_id].participating.add(user_id)
    return list(by_id.values())


# --- export ------------------------------------------------------------------------------------

EXPORT_HEADER = [
    "学校",
    "班级",
    "学生",
    "学籍号",
    "关注类别",
    "第一轮·状态",
    "第一轮·家访日期",
    "第一轮·方式",
    "第一轮·教师",
    "第二轮·状态",
    "第二轮·家访日期",
    "第二轮·方式",
    "第二轮·教师",
    "入户次数（特殊学生）",
    "待办",
]
EXPORT_WIDTHS = [18, 13, 9, 22, 9, 9, 12, 9, 9, 9, 12, 9, 9, 10, 6]


def _phase_values(cell: PhaseCell) -> list:
    visit = cell.visit
    if visit is None:
        return [cell.label, None, "", ""]
    return [
        cell.label,
        timezone.localdate(visit.visited_at),
        visit.get_method_display(),
        visit.lead_teacher.display_name,
    ]


def export_row(row: LedgerRow) -> list:
    student = row.student
    return [
        student.school.name,
        student.school_class.name if student.school_class else "未分班",
        student.name,
        mask_id_number(student.student_number),
        row.group_label,
        *_phase_values(row.first),
        *_phase_values(row.revisit),
        row.in_home_label,
        "是" if row.todo else "",
    ]


def work_ledger_rows(students: QuerySet[Student], phases: CampaignPhases) -> Iterator[list]:
    """Header, then one row per active student of ``students`` (scoped, not yet annotated) by
    class, 待办 first within a class. Streamed: one annotated query read through a cursor, and per
    ``EXPORT_CHUNK_SIZE`` students three small queries; never the whole set in memory."""
    yield EXPORT_HEADER
    ordered = ledger_students(students, phases).order_by(
        "school_id", "school_class__grade", "school_class__number", "-todo", "name", "pk"
    )
    chunk: list[Student] = []
    for student in ordered.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        chunk.append(student)
        if len(chunk) == EXPORT_CHUNK_SIZE:
            yield from (export_row(row) for row in ledger_rows(chunk))
            chunk = []
    yield from (export_row(row) for row in ledger_rows(chunk))


def work_ledger_class_sheet(school_class: SchoolClass, phases: CampaignPhases) -> LedgerSheet:
    head = school_class.head_teacher.display_name if school_class.head_teacher else "（未设）"
    return LedgerSheet(
        name=school_class.name,
        subtitle=f"班级：{school_class.name}　　班主任：{head}",
        rows=work_ledger_rows(Student.objects.filter(school_class=school_class), phases),
        widths=EXPORT_WIDTHS,
    )


def work_ledger_school_sheets(school: School, phases: CampaignPhases) -> Iterator[LedgerSheet]:
    """A school's work ledger: one sheet per class of the current year (DESIGN §6), then the
    students without a class, if any."""
    year = SchoolYear.current(phases.today)
    classes = SchoolClass.objects.filter(school=school, school_year=year).select_related("head_teacher")
    for school_class in classes.order_by("grade", "number"):
        yield work_ledger_class_sheet(school_class, phases)
    unplaced = Student.objects.filter(school=school, school_class__isnull=True, status=Student.Status.ACTIVE)
    if unplaced.exists():
        yield LedgerSheet(name="未分班", rows=work_ledger_rows(unplaced, phases), widths=EXPORT_WIDTHS)


def work_ledger_schools_sheets(schools: QuerySet[School], phases: CampaignPhases) -> Iterator[LedgerSheet]:
    """A zone's or the county's work ledger: one sheet per school, its classes in order."""
    for school in schools.order_by("zone__code", "code"):
        yield LedgerSheet(
            name=school.name,
            subtitle=f"学校：{school.name}",
            rows=work_ledger_rows(Student.objects.filter(school=school), phases),
            widths=EXPORT_WIDTHS,
        )
