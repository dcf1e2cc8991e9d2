# The queries below are assembled from constant SQL fragments and numbered placeholders; every value
# (ids, dates, codes) is passed as a parameter, never formatted into the text.
# ruff: noqa: S608
"""The statistics engine (DESIGN §7): every figure of the bureau's sheet and the further indicators,
computed in the database into ``UnitStatistics`` rows.

How the figures are counted
---------------------------
- A student counts in the school and class they are on the roster of today, if active; their
  categories are those in force today. A member of staff (teacher or school admin, active) counts
  in the school whose staff they are. A visit counts only once submitted, in the phase its date
  falls in (``Visit.phase``); the whole campaign is the union of its phases.
- 家访学生数量 is every active student, except in the revisit round (第二轮重点回访), where it is
  the focus and special students; 已走访人数 is those of them with a submitted visit in the
  period. 参与家访教师数量 is the staff with a submitted visit in the period, as lead teacher or
  companion. For a class, its staff are its head teacher and the teachers assigned to it, and a
  teacher takes part by joining a visit of one of its students.
- Special students meet the rule with two in-home visits in the campaign's school year, whatever
  the period.

Units partition one another (a student, a member of staff, a visit, a safety report belongs to
one school), so zone and county rows are sums of school rows and their distinct counts stay
distinct. Class and school rows are computed from the raw tables with grouped, conditional
aggregation: a fixed handful of queries for a chunk of schools, whatever its number of students
or visits. Rows are upserted on (campaign, period, level, unit), never incremented, so running a
computation twice, or two at once, or again after one was killed, gives the same figures.
"""

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from ledgers.models import (
    WHOLE_CAMPAIGN,
    Level,
    StatisticsRun,
    TeacherStatistics,
    UnitStatistics,
    UnitStatisticsDay,
)
from schools.models import SCHOOL_ROLES, Campaign, Phase, School, SchoolClass, SchoolYear, User, Zone
from students.models import (
    FOCUS_CATEGORIES,
    IN_HOME_VISITS_REQUIRED,
    REVISIT_CATEGORIES,
    SPECIAL_CATEGORIES,
    Category,
    Student,
)
from visits.models import Method, SafetyReport, Suggestion, Visit

CATEGORIES = list(Category.values)
FOCUS = [str(c) for c in FOCUS_CATEGORIES]
SPECIAL = [str(c) for c in SPECIAL_CATEGORIES]
REVISIT_REQUIRED = [str(c) for c in REVISIT_CATEGORIES]
CARE = [str(Category.ORPHAN), str(Category.UNSUPPORTED)]

FIGURES = (
    "staff_total",
    "teachers_participating",
    "students_required",
    "students_visited",
    "students_total",
    "visits",
    "in_home_visits",
    "focus_students",
    "focus_visited",
    "special_students",
    "special_meeting_rule",
    "care_students",
    "open_feedback",
    "overdue_safety_reports",
)
TEACHER_FIGURES = (
    "students_assigned",
    "students_visited",
    "visits",
    "in_home_visits",
    "records_complete",
    "records_draft",
)


@dataclass(frozen=True)
class _Window:
    """A period as the queries see it: its code, the phases it covers, and its dates."""

    code: str
    phase_ids: tuple[int, ...]
    start: datetime.datetime | None
    end: datetime.datetime | None  # exclusive
    revisit: bool
    until: datetime.datetime | None = None  # only visits before this count (the history backfill)

    def condition(self) -> tuple[str, list]:
        """SQL for "visit ``v`` belongs to this period", with its parameters."""
        phases_in, params = _in(self.phase_ids)
        if self.until is None:
            return f"v.phase_id IN {phases_in}", params
        return f"(v.phase_id IN {phases_in} AND v.visited_at < %s)", [*params, _dt(self.until)]


@dataclass
class _Figures:
    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIGURES, 0))
    categories: dict[str, list[int]] = field(default_factory=lambda: {c: [0, 0] for c in CATEGORIES})

    def add(self, other: "_Figures") -> None:
        for name in FIGURES:
            self.values[name] += other.values[name]
        for code in CATEGORIES:
            self.categories[code][0] += other.categories[code][0]
            self.categories[code][1] += other.categories[code][1]


def _start_of(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


def _windows(campaign: Campaign) -> list[_Window]:
    phases = list(Phase.objects.filter(campaign=campaign).order_by("start"))
    whole = _Window(
        code=WHOLE_CAMPAIGN,
        phase_ids=tuple(p.pk for p in phases),
        start=_start_of(phases[0].start) if phases else None,
        end=_start_of(phases[-1].end + datetime.timedelta(days=1)) if phases else None,
        revisit=False,
    )
    return [whole] + [
        _Window(
            code=p.kind,
            phase_ids=(p.pk,),
            start=_start_of(p.start),
            end=_start_of(p.end + datetime.timedelta(days=1)),
            revisit=p.kind == Phase.Kind.REVISIT,
        )
        for p in phases
    ]


def _school_year_bounds(campaign: Campaign, today: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    year = campaign.school_year or SchoolYear.current(today)
    if year is None:
        return _start_of(datetime.date(campaign.year, 1, 1)), _start_of(datetime.date(campaign.year + 1, 1, 1))
    return _start_of(year.start), _start_of(year.end + datetime.timedelta(days=1))


def _dt(value: datetime.datetime):
    """A datetime as the backend stores it (SQLite keeps UTC text; PostgreSQL takes it as it is)."""
    return connection.ops.adapt_datetimefield_value(value)


def _in(values: Sequence) -> tuple[str, list]:
    """``IN (...)`` with one placeholder a value; an empty list matches nothing."""
    if not values:
        return "(NULL)", []
    return "(" + ", ".join(["%s"] * len(values)) + ")", list(values)


def _flag(condition: str) -> str:
    return f"MAX(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _period_flags(windows: list[_Window], alias: str) -> tuple[list[str], list]:
    """One ``MAX(CASE ...) AS <alias>_<i>`` column a period: 1 when a row's visit falls in it."""
    columns, params = [], []
    for index, window in enumerate(windows):
        condition, condition_params = window.condition()
        columns.append(f"{_flag(condition)} AS {alias}_{index}")
        params += condition_params
    return columns, params


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- the class and school rows of a chunk of schools ------------------------------------------


def _student_figures(school_ids: list[int], windows: list[_Window], today: datetime.date, year_bounds) -> dict:
    """Per (school, class): students, categories, and who was visited in each period. One query:
    visits are grouped per student and categories per student first (hash aggregates over the
    chunk's rows), then joined to the roster and summed per class."""
    schools_in, schools_params = _in(school_ids)
    seen_columns, seen_params = _period_flags(windows, "seen")
    seen_sql = f"""
        SELECT vs.student_id AS student_id, {", ".join(seen_columns)},
               SUM(CASE WHEN v.method = %s AND v.visited_at >= %s AND v.visited_at < %s THEN 1 ELSE 0 END)
                   AS in_home_year
        FROM visits_visit_students vs
        JOIN visits_visit v ON v.id = vs.visit_id
        JOIN students_student s ON s.id = vs.student_id
        WHERE v.status = %s AND s.school_id IN {schools_in}
        GROUP BY vs.student_id
    """
    seen_params += [Method.IN_HOME, _dt(year_bounds[0]), _dt(year_bounds[1]), Visit.Status.SUBMITTED, *schools_params]

    category_columns = [f"{_flag('sc.category = %s')} AS c_{i}" for i in range(len(CATEGORIES))]
    categories_sql = f"""
        SELECT sc.student_id AS student_id, {", ".join(category_columns)}
        FROM students_studentcategory sc
        JOIN students_student s ON s.id = sc.student_id
        WHERE sc.start <= %s AND (sc."end" IS NULL OR sc."end" >= %s) AND s.school_id IN {schools_in}
        GROUP BY sc.student_id
    """
    day = connection.ops.adapt_datefield_value(today)
    categories_params = [*CATEGORIES, day, day, *schools_params]

    def category(code: str) -> str:
        return f"COALESCE(c.c_{CATEGORIES.index(code)}, 0)"

    def any_of(codes: Iterable[str]) -> str:
        return "(CASE WHEN " + " + ".join(category(code) for code in codes) + " > 0 THEN 1 ELSE 0 END)"

    def seen(index: int) -> str:
        return f"COALESCE(v.seen_{index}, 0)"

    sums = ["COUNT(*)"]
    sums += [f"SUM({category(code)})" for code in CATEGORIES]
    sums += [f"SUM({any_of(FOCUS)})", f"SUM({any_of(SPECIAL)})", f"SUM({any_of(CARE)})"]
    sums += [f"SUM({any_of(REVISIT_REQUIRED)})"]
    meets_rule = f"(CASE WHEN COALESCE(v.in_home_year, 0) >= {IN_HOME_VISITS_REQUIRED} THEN 1 ELSE 0 END)"
    sums += [f"SUM({any_of(SPECIAL)} * {meets_rule})"]
    for index in range(len(windows)):
        sums.append(f"SUM({seen(index)})")
        sums.append(f"SUM({any_of(REVISIT_REQUIRED)} * {seen(index)})")
        sums.append(f"SUM({any_of(FOCUS)} * {seen(index)})")
        sums += [f"SUM({category(code)} * {seen(index)})" for code in CATEGORIES]
    sql = f"""
        WITH v AS ({seen_sql}), c AS ({categories_sql})
        SELECT s.school_id, s.school_class_id, {", ".join(sums)}
        FROM students_student s
        LEFT JOIN v ON v.student_id = s.id
        LEFT JOIN c ON c.student_id = s.id
        WHERE s.status = %s AND s.school_id IN {schools_in}
        GROUP BY s.school_id, s.school_class_id
    """
    params = [*seen_params, *categories_params, Student.Status.ACTIVE, *schools_params]

    result: dict[tuple[int, int | None], dict[str, _Figures]] = {}
    for row in _rows(sql, params):
        school_id, class_id, values = row[0], row[1], [int(x or 0) for x in row[2:]]
        total, values = values[0], values[1:]
        in_force, values = values[: len(CATEGORIES)], values[len(CATEGORIES) :]
        focus, special, care, revisit_required, meeting = values[:5]
        values = values[5:]
        per_window = {}
        for window in windows:
            visited, revisit_visited, focus_visited = values[:3]
            by_category, values = values[3 : 3 + len(CATEGORIES)], values[3 + len(CATEGORIES) :]
            figures = _Figures()
            figures.values.update(
                students_total=total,
                students_required=revisit_required if window.revisit else total,
                students_visited=revisit_visited if window.revisit else visited,
                focus_students=focus,
                focus_visited=focus_visited,
                special_students=special,
                special_meeting_rule=meeting,
                care_students=care,
            )
            figures.categories = {code: [in_force[i], by_category[i]] for i, code in enumerate(CATEGORIES)}
            per_window[window.code] = figures
        result[(school_id, class_id)] = per_window
    return result


def _participants(
    *, users_of: list[int] | None = None, students_of: list[int] | None = None, submitted: bool = True
) -> tuple[str, list]:
    """(visit, member of staff) for each lead teacher and companion of the visits, as SQL and its
    parameters. The filters go inside both branches, so the database reads only the chunk's visits
    through its indexes: the staff of ``users_of`` schools, or visits of ``students_of`` schools."""
    branches, params = [], []
    for visit_column, user_column, source in (
        ("v.id", "v.lead_teacher_id", "visits_visit v"),
        ("vc.visit_id", "vc.user_id", "visits_visit_companions vc JOIN visits_visit v ON v.id = vc.visit_id"),
    ):
        conditions = []
        if submitted:
            conditions.append("v.status = %s")
            params.append(Visit.Status.SUBMITTED)
        if users_of is not None:
            schools_in, schools_params = _in(users_of)
            conditions.append(f"{user_column} IN (SELECT id FROM schools_user WHERE school_id IN {schools_in})")
            params += schools_params
        if students_of is not None:
            schools_in, schools_params = _in(students_of)
            conditions.append(
                f"{visit_column} IN (SELECT vs.visit_id FROM visits_visit_students vs"
                f" JOIN students_student s ON s.id = vs.student_id WHERE s.school_id IN {schools_in})"
            )
            params += schools_params
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        branches.append(f"SELECT {visit_column} AS visit_id, {user_column} AS user_id FROM {source}{where}")
    return " UNION ".join(branches), params


def _staff_figures(school_ids: list[int], windows: list[_Window]) -> dict[int, dict[str, tuple[int, int]]]:
    """Per school and period: (staff on the roster, of them with a submitted visit in the period)."""
    schools_in, schools_params = _in(school_ids)
    roles_in, roles_params = _in(list(SCHOOL_ROLES))
    flags, flag_params = _period_flags(windows, "took_part")
    participants, participants_params = _participants(users_of=school_ids)
    sql = f"""
        WITH p AS ({participants}),
        t AS (
            SELECT p.user_id AS user_id, {", ".join(flags)}
            FROM p JOIN visits_visit v ON v.id = p.visit_id
            GROUP BY p.user_id
        )
        SELECT u.school_id, COUNT(*), {", ".join(f"SUM(COALESCE(t.took_part_{i}, 0))" for i in range(len(windows)))}
        FROM schools_user u LEFT JOIN t ON t.user_id = u.id
        WHERE u.is_active = %s AND u.role IN {roles_in} AND u.school_id IN {schools_in}
        GROUP BY u.school_id
    """
    params = [*participants_params, *flag_params, True, *roles_params, *schools_params]
    result = {}
    for row in _rows(sql, params):
        result[row[0]] = {w.code: (int(row[1]), int(row[2 + i] or 0)) for i, w in enumerate(windows)}
    return result


def _class_staff_sql(schools_in: str) -> str:
    """(class, member of staff): head teachers and assigned teachers, active accounts only."""
    return f"""
        SELECT cs.class_id AS class_id, cs.user_id AS user_id FROM (
            SELECT c.id AS class_id, c.head_teacher_id AS user_id
            FROM schools_schoolclass c WHERE c.head_teacher_id IS NOT NULL AND c.school_id IN {schools_in}
            UNION
            SELECT ta.school_class_id AS class_id, ta.teacher_id AS user_id
            FROM schools_teachingassignment ta JOIN schools_schoolclass c ON c.id = ta.school_class_id
            WHERE c.school_id IN {schools_in}
        ) cs JOIN schools_user u ON u.id = cs.user_id WHERE u.is_active = %s
    """


def _class_staff_figures(school_ids: list[int], windows: list[_Window]) -> dict[int, dict[str, tuple[int, int]]]:
    """Per class and period: (the class's staff, of them who joined a visit of one of its students)."""
    schools_in, schools_params = _in(school_ids)
    flags, flag_params = _period_flags(windows, "took_part")
    participants, participants_params = _participants(students_of=school_ids)
    sql = f"""
        WITH p AS ({participants}),
        t AS (
            SELECT s.school_class_id AS class_id, p.user_id AS user_id, {", ".join(flags)}
            FROM p
            JOIN visits_visit v ON v.id = p.visit_id
            JOIN visits_visit_students vs ON vs.visit_id = p.visit_id
            JOIN students_student s ON s.id = vs.student_id
            WHERE s.school_id IN {schools_in} AND s.status = %s
            GROUP BY s.school_class_id, p.user_id
        ),
        cs AS ({_class_staff_sql(schools_in)})
        SELECT cs.class_id, COUNT(*), {", ".join(f"SUM(COALESCE(t.took_part_{i}, 0))" for i in range(len(windows)))}
        FROM cs LEFT JOIN t ON t.class_id = cs.class_id AND t.user_id = cs.user_id
        GROUP BY cs.class_id
    """
    params = [
        *participants_params,
        *flag_params,
        *schools_params,
        Student.Status.ACTIVE,
        *schools_params,
        *schools_params,
        True,
    ]
    return {
        row[0]: {w.code: (int(row[1]), int(row[2 + i] or 0)) for i, w in enumerate(windows)}
        for row in _rows(sql, params)
    }


def _visit_counts(school_ids: list[int], campaign: Campaign) -> tuple[dict, dict]:
    """Submitted visits (人次) and in-home visits per school and phase, and per class and phase (a
    visit of students of two classes counts once in each class, once in the school)."""
    base = Q(status=Visit.Status.SUBMITTED, phase__campaign=campaign)
    by_school = {
        (row["school_id"], row["phase_id"]): (row["n"], row["in_home"])
        for row in Visit.objects.filter(base, school_id__in=school_ids)
        .values("school_id", "phase_id")
        .annotate(n=Count("pk"), in_home=Count("pk", filter=Q(method=Method.IN_HOME)))
        .order_by()
    }
    through = Visit.students.through
    by_class = {
        (row["student__school_class_id"], row["visit__phase_id"]): (row["n"], row["in_home"])
        for row in through.objects.filter(
            visit__status=Visit.Status.SUBMITTED,
            visit__phase__campaign=campaign,
            student__school_id__in=school_ids,
            student__status=Student.Status.ACTIVE,
        )
        .values("student__school_class_id", "visit__phase_id")
        .annotate(
            n=Count("visit_id", distinct=True),
            in_home=Count("visit_id", distinct=True, filter=Q(visit__method=Method.IN_HOME)),
        )
        .order_by()
    }
    return by_school, by_class


def _feedback_counts(school_ids: list[int], campaign: Campaign) -> dict:
    """Suggestions passed to the school (「提交学校处理」) per school and phase: open until the
    feedback ledger answers them."""
    return {
        (row["visit__school_id"], row["visit__phase_id"]): row["n"]
        for row in Suggestion.objects.filter(
            to_school=True,
            visit__status=Visit.Status.SUBMITTED,
            visit__phase__campaign=campaign,
            visit__school_id__in=school_ids,
        )
        .values("visit__school_id", "visit__phase_id")
        .annotate(n=Count("pk"))
        .order_by()
    }


def _overdue_counts(school_ids: list[int], windows: list[_Window]) -> dict[int, dict[str, int]]:
    """Safety reports that went overdue, per school, by the period their planned start falls in."""
    annotations = {
        f"w{i}": Count("pk", filter=Q(planned_start__gte=w.start, planned_start__lt=w.end))
        for i, w in enumerate(windows)
        if w.start is not None
    }
    if not annotations:
        return {}
    rows = (
        SafetyReport.objects.filter(school_id__in=school_ids, overdue_notified_at__isnull=False)
        .values("school_id")
        .annotate(**annotations)
        .order_by()
    )
    return {row["school_id"]: {w.code: row.get(f"w{i}", 0) for i, w in enumerate(windows)} for row in rows}


def _teacher_figures(
    school_ids: list[int], windows: list[_Window]
) -> tuple[dict[int, dict[str, dict[str, int]]], dict[int, int]]:
    """Per member of staff and period: the teacher assessment's figures; and each one's school."""
    schools_in, schools_params = _in(school_ids)
    n = len(windows)
    phase_lists = [_in(w.phase_ids) for w in windows]

    # Students of the classes each teacher heads or teaches, and of them those visited with them.
    seen_columns, seen_params = _period_flags(windows, "seen")
    seen_flags = ", ".join(seen_columns)
    participants, participants_params = _participants(users_of=school_ids)
    students_sql = f"""
        WITH p AS ({participants}),
        cs AS ({_class_staff_sql(schools_in)}),
        ts AS (
            SELECT DISTINCT cs.user_id AS user_id, s.id AS student_id
            FROM cs JOIN students_student s ON s.school_class_id = cs.class_id
            WHERE s.status = %s
        ),
        t AS (
            SELECT p.user_id AS user_id, vs.student_id AS student_id, {seen_flags}
            FROM p
            JOIN visits_visit v ON v.id = p.visit_id
            JOIN visits_visit_students vs ON vs.visit_id = p.visit_id
            GROUP BY p.user_id, vs.student_id
        )
        SELECT ts.user_id, COUNT(*), {", ".join(f"SUM(COALESCE(t.seen_{i}, 0))" for i in range(n))}
        FROM ts LEFT JOIN t ON t.user_id = ts.user_id AND t.student_id = ts.student_id
        GROUP BY ts.user_id
    """
    students_params = [
        *participants_params,
        *schools_params,
        *schools_params,
        True,
        Student.Status.ACTIVE,
        *seen_params,
    ]

    # Visits each took part in, in-home among them; records each led, submitted or in draft.
    counts = []
    count_params: list = []
    for i, (phases_in, params) in enumerate(phase_lists):
        counts.append(f"SUM(CASE WHEN v.status = %s AND v.phase_id IN {phases_in} THEN 1 ELSE 0 END) AS visits_{i}")
        counts.append(
            f"SUM(CASE WHEN v.status = %s AND v.method = %s AND v.phase_id IN {phases_in} THEN 1 ELSE 0 END)"
            f" AS in_home_{i}"
        )
        counts.append(
            f"SUM(CASE WHEN v.status = %s AND v.lead_teacher_id = p.user_id AND v.phase_id IN {phases_in}"
            f" THEN 1 ELSE 0 END) AS complete_{i}"
        )
        counts.append(
            f"SUM(CASE WHEN v.status = %s AND v.lead_teacher_id = p.user_id"
            f" AND (v.phase_id IN {phases_in}{' OR v.phase_id IS NULL' if i == 0 else ''})"
            f" THEN 1 ELSE 0 END) AS draft_{i}"
        )
        count_params += [Visit.Status.SUBMITTED, *params, Visit.Status.SUBMITTED, Method.IN_HOME, *params]
        count_params += [Visit.Status.SUBMITTED, *params, Visit.Status.DRAFT, *params]
    every_record, every_record_params = _participants(users_of=school_ids, submitted=False)
    visits_sql = f"""
        WITH p AS ({every_record})
        SELECT p.user_id, {", ".join(counts)}
        FROM p JOIN visits_visit v ON v.id = p.visit_id
        GROUP BY p.user_id
    """
    visits_params = [*every_record_params, *count_params]

    staff = list(
        User.objects.filter(school_id__in=school_ids, is_active=True, role__in=SCHOOL_ROLES).values_list(
            "pk", "school_id"
        )
    )
    result = {pk: {w.code: dict.fromkeys(TEACHER_FIGURES, 0) for w in windows} for pk, _ in staff}
    for row in _rows(students_sql, students_params):
        if row[0] in result:
            for i, w in enumerate(windows):
                result[row[0]][w.code].update(students_assigned=int(row[1]), students_visited=int(row[2 + i] or 0))
    for row in _rows(visits_sql, visits_params):
        if row[0] in result:
            for i, w in enumerate(windows):
                visits, in_home, complete, draft = (int(x or 0) for x in row[1 + 4 * i : 5 + 4 * i])
                result[row[0]][w.code].update(
                    visits=visits, in_home_visits=in_home, records_complete=complete, records_draft=draft
                )
    return {pk: result[pk] for pk, _ in staff}, dict(staff)


def _compute_schools(*, campaign: Campaign, school_ids: list[int], now: datetime.datetime) -> None:
    """Class, school and teacher rows of these schools, upserted in one transaction."""
    today = timezone.localdate(now)
    windows = _windows(campaign)
    year_bounds = _school_year_bounds(campaign, today)
    schools = {s.pk: s for s in School.objects.filter(pk__in=school_ids).select_related("zone")}
    school_ids = sorted(schools)
    students = _student_figures(school_ids, windows, today, year_bounds)
    staff = _staff_figures(school_ids, windows)
    class_staff = _class_staff_figures(school_ids, windows)
    visits_by_school, visits_by_class = _visit_counts(school_ids, campaign)
    feedback = _feedback_counts(school_ids, campaign)
    overdue = _overdue_counts(school_ids, windows)
    teachers, teacher_school = _teacher_figures(school_ids, windows)
    current_year = SchoolYear.current(today)
    classes = {
        c.pk: c
        for c in SchoolClass.objects.filter(school_id__in=school_ids).filter(
            Q(pk__in=[class_id for _, class_id in students if class_id]) | Q(school_year=current_year)
        )
    }

    def phase_sum(table: dict, key, window: _Window, index: int | None = None):
        total = 0
        for phase_id in window.phase_ids:
            value = table.get((key, phase_id))
            if value is not None:
                total += value[index] if index is not None else value
        return total

    students_by_school: dict[int, list[dict[str, _Figures]]] = defaultdict(list)
    for (row_school, _class), per_window in students.items():
        students_by_school[row_school].append(per_window)

    unit_rows: list[UnitStatistics] = []
    for school_id, school in schools.items():
        for window in windows:
            figures = _Figures()
            for per_window in students_by_school[school_id]:
                figures.add(per_window[window.code])
            total, took_part = staff.get(school_id, {}).get(window.code, (0, 0))
            figures.values.update(
                staff_total=total,
                teachers_participating=took_part,
                visits=phase_sum(visits_by_school, school_id, window, 0),
                in_home_visits=phase_sum(visits_by_school, school_id, window, 1),
                open_feedback=phase_sum(feedback, school_id, window),
                overdue_safety_reports=overdue.get(school_id, {}).get(window.code, 0),
            )
            unit_rows.append(
                _unit_row(campaign, window.code, Level.SCHOOL, school_id, school.name, figures, now, school=school)
            )
        for class_id, school_class in classes.items():
            if school_class.school_id != school_id:
                continue
            for window in windows:
                figures = _Figures()
                if (school_id, class_id) in students:
                    figures.add(students[(school_id, class_id)][window.code])
                total, took_part = class_staff.get(class_id, {}).get(window.code, (0, 0))
                figures.values.update(
                    staff_total=total,
                    teachers_participating=took_part,
                    visits=phase_sum(visits_by_class, class_id, window, 0),
                    in_home_visits=phase_sum(visits_by_class, class_id, window, 1),
                )
                unit_rows.append(
                    _unit_row(
                        campaign,
                        window.code,
                        Level.CLASS,
                        class_id,
                        school_class.name,
                        figures,
                        now,
                        school=school,
                        sort_key=f"{school_class.grade:02d}{school_class.number:03d}",
                    )
                )
    teacher_rows = [
        TeacherStatistics(
            campaign=campaign,
            period=code,
            teacher_id=teacher_id,
            school_id=teacher_school[teacher_id],
            computed_at=now,
            **values,
        )
        for teacher_id, per_window in teachers.items()
        for code, values in per_window.items()
    ]
    with transaction.atomic():
        _upsert_units(unit_rows)
        # Units and staff that are gone (a class dissolved, a teacher left) lose their rows.
        kept_classes = [row.unit_id for row in unit_rows if row.level == Level.CLASS]
        UnitStatistics.objects.filter(campaign=campaign, level=Level.CLASS, school_id__in=school_ids).exclude(
            unit_id__in=kept_classes
        ).delete()
        TeacherStatistics.objects.bulk_create(
            teacher_rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["campaign", "period", "teacher"],
            update_fields=["school", *TEACHER_FIGURES, "computed_at"],
        )
        TeacherStatistics.objects.filter(campaign=campaign, school_id__in=school_ids).exclude(
            teacher_id__in=list(teachers)
        ).delete()


def _unit_row(campaign, period, level, unit_id, name, figures: _Figures, now, *, school=None, zone=None, sort_key=""):
    return UnitStatistics(
        campaign=campaign,
        period=period,
        level=level,
        unit_id=unit_id,
        name=name[:100],
        school=school,
        zone=zone or (school.zone if school else None),
        sort_key=sort_key or (school.code if school else ""),
        categories=figures.categories,
        computed_at=now,
        **figures.values,
    )


def _upsert_units(rows: list[UnitStatistics]) -> None:
    UnitStatistics.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["campaign", "period", "level", "unit_id"],
        update_fields=["name", "zone", "school", "sort_key", *FIGURES, "categories", "computed_at"],
    )


def _roll_up(*, campaign: Campaign, zone_ids: Iterable[int] | None, now: datetime.datetime) -> None:
    """Zone rows (of ``zone_ids``, or all) and the county row as sums of the school rows, and the
    day's history rows of the schools, zones and county for the whole campaign."""
    zones = {z.pk: z for z in (Zone.objects.filter(pk__in=zone_ids) if zone_ids is not None else Zone.objects.all())}
    periods = [w.code for w in _windows(campaign)]
    school_rows = UnitStatistics.objects.filter(campaign=campaign, level=Level.SCHOOL).only(
        "period", "zone_id", "unit_id", "categories", *FIGURES
    )
    by_zone: dict[tuple[int, str], _Figures] = defaultdict(_Figures)
    county: dict[str, _Figures] = defaultdict(_Figures)
    history: list[UnitStatisticsDay] = []
    today = timezone.localdate(now)
    for row in school_rows.iterator(chunk_size=2000):
        figures = _Figures(values={name: getattr(row, name) for name in FIGURES}, categories=row.categories)
        county[row.period].add(figures)
        if row.zone_id in zones:
            by_zone[(row.zone_id, row.period)].add(figures)
        if row.period == WHOLE_CAMPAIGN and (zone_ids is None or row.zone_id in zones):
            history.append(_day(campaign, Level.SCHOOL, row.unit_id, today, figures))
    rows = []
    for zone_id, zone in zones.items():
        for period in periods:
            figures = by_zone.get((zone_id, period), _Figures())
            rows.append(
                _unit_row(campaign, period, Level.ZONE, zone_id, zone.name, figures, now, zone=zone, sort_key=zone.code)
            )
            if period == WHOLE_CAMPAIGN:
                history.append(_day(campaign, Level.ZONE, zone_id, today, figures))
    for period in periods:
        rows.append(_unit_row(campaign, period, Level.COUNTY, 0, "全县", county.get(period, _Figures()), now))
    history.append(_day(campaign, Level.COUNTY, 0, today, county.get(WHOLE_CAMPAIGN, _Figures())))
    with transaction.atomic():
        _upsert_units(rows)
        UnitStatisticsDay.objects.bulk_create(
            history,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["campaign", "level", "unit_id", "day"],
            update_fields=["staff_total", "teachers_participating", "students_required", "students_visited"],
        )


def _day(campaign, level, unit_id, day, figures: _Figures) -> UnitStatisticsDay:
    return UnitStatisticsDay(
        campaign=campaign,
        level=level,
        unit_id=unit_id,
        day=day,
        staff_total=figures.values["staff_total"],
        teachers_participating=figures.values["teachers_participating"],
        students_required=figures.values["students_required"],
        students_visited=figures.values["students_visited"],
    )


# --- entry points ----------------------------------------------------------------------------


def statistics_compute(
    *, campaign: Campaign, school_ids: Iterable[int] | None = None, now: datetime.datetime | None = None
) -> None:
    """Compute the rows of ``school_ids`` (every school when None) and roll up their zones and the
    county. Idempotent: the same data gives the same rows however often it runs."""
    now = now or timezone.now()
    ids = sorted(School.objects.values_list("pk", flat=True) if school_ids is None else set(school_ids))
    for start in range(0, len(ids), CHUNK_SCHOOLS):
        _compute_schools(campaign=campaign, school_ids=ids[start : start + CHUNK_SCHOOLS], now=now)
    zone_ids = None if school_ids is None else set(School.objects.filter(pk__in=ids).values_list("zone_id", flat=True))
    _roll_up(campaign=campaign, zone_ids=zone_ids, now=now)


CHUNK_SCHOOLS = 100


def statistics_refresh_stale(
    *, school_ids: Iterable[int] | None = None, older_than: datetime.timedelta | None = None
) -> list[int]:
    """Recompute the schools whose statistics are marked stale (of ``school_ids``, or all), and
    clear each mark if no new request came in meanwhile (compare and swap on the mark's time).

    ``older_than`` coalesces: a school whose latest request is younger is left for the refresh that
    request queued, unless its figures are older than ``STATISTICS_MAX_STALENESS``. Returns the ids
    refreshed."""
    now = timezone.now()
    marked = School.objects.filter(statistics_stale_since__isnull=False)
    if school_ids is not None:
        marked = marked.filter(pk__in=list(school_ids))
    marks = dict(marked.values_list("pk", "statistics_stale_since"))
    if older_than:
        fresh_enough = now - settings.STATISTICS_MAX_STALENESS
        recently_computed = set(
            UnitStatistics.objects.filter(
                level=Level.SCHOOL, unit_id__in=list(marks), period=WHOLE_CAMPAIGN, computed_at__gt=fresh_enough
            ).values_list("unit_id", flat=True)
        )
        marks = {pk: mark for pk, mark in marks.items() if mark <= now - older_than or pk not in recently_computed}
    if not marks:
        return []
    campaign = Campaign.current(timezone.localdate(now))
    if campaign is not None:
        statistics_compute(campaign=campaign, school_ids=marks, now=now)
    done = Q()
    for pk, mark in marks.items():
        done |= Q(pk=pk, statistics_stale_since=mark)
    School.objects.filter(done).update(statistics_stale_since=None)
    return sorted(marks)


def statistics_recompute_all(*, on_chunk=None) -> StatisticsRun | None:
    """The nightly full recompute: every school, a chunk at a time, then zones and the county.

    One unfinished run per campaign exists at a time (a partial unique constraint). A worker takes
    it over only when its lease has run out (no progress for ``STATISTICS_RUN_LEASE``); so a second
    worker started meanwhile leaves at once, and a run whose worker was killed is finished by the
    next one from the school after the last one it stored. Each chunk's rows and the progress are
    written in one transaction. ``on_chunk(run)`` is called after each chunk (tests use it to die).
    Returns the finished run, or None when there is no campaign or another worker is running."""
    now = timezone.now()
    campaign = Campaign.current(timezone.localdate(now))
    if campaign is None:
        return None
    run = _run_claim(campaign, now)
    if run is None:
        return None
    while True:
        ids = list(
            School.objects.filter(pk__gt=run.last_school_id).order_by("pk").values_list("pk", flat=True)[:CHUNK_SCHOOLS]
        )
        if not ids:
            break
        with transaction.atomic():
            _compute_schools(campaign=campaign, school_ids=ids, now=timezone.now())
            run.last_school_id = ids[-1]
            run.schools_done += len(ids)
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["last_school_id", "schools_done", "heartbeat_at"])
        if on_chunk is not None:
            on_chunk(run)
    with transaction.atomic():
        _roll_up(campaign=campaign, zone_ids=None, now=timezone.now())
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
        # Every school was computed after the run started: requests made before then are answered.
        School.objects.filter(statistics_stale_since__lte=run.started_at).update(statistics_stale_since=None)
    return run


def _run_claim(campaign: Campaign, now: datetime.datetime) -> StatisticsRun | None:
    run = StatisticsRun.objects.filter(campaign=campaign, finished_at__isnull=True).first()
    if run is not None:
        if run.heartbeat_at > now - settings.STATISTICS_RUN_LEASE:
            return None
        claimed = StatisticsRun.objects.filter(pk=run.pk, heartbeat_at=run.heartbeat_at).update(heartbeat_at=now)
        if not claimed:
            return None
        run.heartbeat_at = now
        return run
    try:
        with transaction.atomic():
            return StatisticsRun.objects.create(campaign=campaign, started_at=now, heartbeat_at=now)
    except IntegrityError:
        return None  # another worker created the run a moment ago


def statistics_history_backfill(*, campaign: Campaign, days: Iterable[datetime.date]) -> int:
    """Daily history rows (schools, zones, county; the whole campaign) for past ``days``, counting
    the visits made before each day ended and the categories in force on it. For a deployment in
    mid-campaign, and for the demo's trend. The roster is today's: past rosters are not kept.
    Returns the number of rows written."""
    whole = _windows(campaign)[0]
    school_zone = dict(School.objects.values_list("pk", "zone_id"))
    ids = sorted(school_zone)
    history: list[UnitStatisticsDay] = []
    for day in days:
        window = dataclasses.replace(whole, until=_start_of(day + datetime.timedelta(days=1)))
        year_bounds = _school_year_bounds(campaign, day)
        zones: dict[int, _Figures] = defaultdict(_Figures)
        county = _Figures()
        for start in range(0, len(ids), CHUNK_SCHOOLS):
            chunk = ids[start : start + CHUNK_SCHOOLS]
            schools: dict[int, _Figures] = defaultdict(_Figures)
            for (school_id, _class), per_window in _student_figures(chunk, [window], day, year_bounds).items():
                schools[school_id].add(per_window[WHOLE_CAMPAIGN])
            for school_id, per_window in _staff_figures(chunk, [window]).items():
                total, took_part = per_window[WHOLE_CAMPAIGN]
                schools[school_id].values.update(staff_total=total, teachers_participating=took_part)
            for school_id in chunk:
                figures = schools[school_id]
                history.append(_day(campaign, Level.SCHOOL, school_id, day, figures))
                zones[school_zone[school_id]].add(figures)
                county.add(figures)
        history += [_day(campaign, Level.ZONE, zone_id, day, figures) for zone_id, figures in zones.items()]
        history.append(_day(campaign, Level.COUNTY, 0, day, county))
    UnitStatisticsDay.objects.bulk_create(
        history,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["campaign", "level", "unit_id", "day"],
        update_fields=["staff_total", "teachers_participating", "students_required", "students_visited"],
    )
    return len(history)
