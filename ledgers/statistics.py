# The statements below are assembled from constant SQL fragments (column names, code constants such
# as a status or a category code, loop indexes); every value that comes from data (ids, dates, the
# campaign) is passed as a named parameter, never formatted into the text.
# ruff: noqa: S608
"""The statistics engine (DESIGN §7): every figure of the bureau's sheet and the further indicators,
computed in the database into ``UnitStatistics`` and ``TeacherStatistics`` rows.

How the figures are counted
---------------------------
- A visit counts once submitted, in the periods its date falls in (``visits.periods``): the phase
  whose dates contain it, and the whole campaign (first phase's start to last phase's end, the
  days between phases included). The stored ``Visit.phase`` is not read: when the bureau moves a
  phase, the next computation counts every visit where its date now falls.
- A student counts in the school and class they are on the roster of today, if active; their
  categories are those in force today. A member of staff (teacher or school admin, active)
  counts in the school whose staff they are.
- 家访学生数量 is every active student, except in the revisit round (第二轮重点回访), where it is
  the focus and special students; 已走访人数 is those of them with a submitted visit in the period.
- 参与家访教师数量: for a school, its staff with a submitted visit in the period, as lead teacher
  or companion; for a class, its head teacher and the teachers assigned to it who took part in a
  submitted visit in the period to a student of that class. Zone and county rows are sums of
  school rows (units partition one another, so distinct counts stay distinct).
- Special students meet the rule with two in-home visits in the campaign's school year.

How it runs
-----------
One run builds a narrow working set once, in temporary tables of its own connection (``stw_*``):
the campaign's and school year's submitted visits (id, school, lead, in-home, period number), their
students and their people (lead and companions), the class staff, and one row per active student
with its categories and one seen-flag per period. Each figure set is then one statement
(``FIGURE_SETS``): it aggregates the working set with one conditional column per period, turns
those columns into one row per period, and upserts the rows with ``INSERT … SELECT … ON CONFLICT DO
UPDATE … WHERE`` the row changed, so unchanged rows are not rewritten. A run over some schools (a
refresh) builds the working set of those schools only and rolls up only their zones and the county.

Adding a figure: add the column to the model, compute it in the working set or in the figure
set's aggregate, and name it in the figure set's select list.
"""

import contextlib
import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from ledgers.models import (
    WHOLE_CAMPAIGN,
    Level,
    SchoolStatisticsCheck,
    StatisticsRun,
    UnitStatisticsDay,
)
from schools.models import SCHOOL_ROLES, Campaign, Grade, School, SchoolYear
from students.models import (
    FOCUS_CATEGORIES,
    IN_HOME_VISITS_REQUIRED,
    REVISIT_CATEGORIES,
    SPECIAL_CATEGORIES,
    Category,
    Student,
)
from visits.models import OPEN_FEEDBACK_STATUSES, Method, Visit
from visits.periods import Window, campaign_windows, school_year_window, start_of

CATEGORIES = list(Category.values)
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
    "care_asks_due",
    "care_asks_done",
    "care_meetings_due",
    "care_meetings_done",
    "special_with_plan",
)
CARE_FIGURES = ("care_asks_due", "care_asks_done", "care_meetings_due", "care_meetings_done")
TEACHER_FIGURES = (
    "students_assigned",
    "students_visited",
    "visits",
    "in_home_visits",
    "records_complete",
    "records_draft",
)
CARE_ROWS_A_STATEMENT = 500  # 3,500 parameters, under SQLite's 32,766
WORK_MEM = "64MB"  # per sort or hash of the run's statements, on PostgreSQL
WORK_STATISTICS_TARGET = 10  # ANALYZE samples 300 × this many rows of each temporary table
# Analysed as soon as built, before the statements that join them (see _working_set_build).
EARLY_ANALYZED = ("stw_visit", "stw_seen", "stw_people")
WORK_TABLES = (
    "stw_period",
    "stw_visit",
    "stw_seen",
    "stw_people",
    "stw_reach",
    "stw_class_staff",
    "stw_student",
    "stw_care",
)


# --- SQL helpers -------------------------------------------------------------------------------


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def _true() -> str:
    return "TRUE" if _postgresql() else "1"


def _lit(value: str) -> str:
    """A code constant (a status, a role, a category code) as an SQL literal."""
    value = str(value)
    assert value.replace("_", "").isalnum() and value.isascii(), value  # noqa: S101 - code constants only
    return f"'{value}'"


def _lits(values: Iterable) -> str:
    return "(" + ", ".join(_lit(v) for v in values) + ")"


def _dt(value: datetime.datetime):
    """A datetime as the backend stores it (SQLite keeps UTC text; PostgreSQL takes it as it is)."""
    return connection.ops.adapt_datetimefield_value(value)


def _json_pairs(pairs: Sequence[tuple[str, str, str]]) -> str:
    """``{code: [a, b], ...}`` built in SQL from (code, expression a, expression b)."""
    if _postgresql():
        return "jsonb_build_object(" + ", ".join(f"{_lit(k)}, jsonb_build_array({a}, {b})" for k, a, b in pairs) + ")"
    return "json_object(" + ", ".join(f"{_lit(k)}, json_array({a}, {b})" for k, a, b in pairs) + ")"


def _json_int(column: str, key: str, index: int) -> str:
    """``column[key][index]`` of a JSON column as an integer."""
    if _postgresql():
        return f"COALESCE(({column} -> {_lit(key)} ->> {index})::integer, 0)"
    return f"COALESCE(json_extract({column}, '$.{key}[{index}]'), 0)"


def _pad(expression: str, width: int) -> str:
    """A non-negative integer as text, zero-padded to ``width``."""
    if _postgresql():
        return f"lpad(({expression})::text, {width}, '0')"
    return f"substr('{'0' * width}' || ({expression}), -{width})"


def _changed(columns: Sequence[str], table: str) -> str:
    """True when the stored row differs from the one proposed (``excluded``) in any of ``columns``."""
    mine = ", ".join(f"{table}.{c}" for c in columns)
    theirs = ", ".join(f"excluded.{c}" for c in columns)
    operator = "IS DISTINCT FROM" if _postgresql() else "IS NOT"
    return f"({mine}) {operator} ({theirs})"


def _upsert(table: str, columns: Sequence[str], key: Sequence[str], select: str) -> str:
    """``INSERT … SELECT … ON CONFLICT DO UPDATE`` that rewrites a row only when a value changed;
    ``computed_at`` moves only with the figures."""
    compared = [c for c in columns if c not in key and c != "computed_at"]
    updated = [c for c in columns if c not in key]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) {select} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in updated)
        + f" WHERE {_changed(compared, table)}"
    )


def _in_window(column: str, index: int) -> str:
    """SQL for "``column`` (a datetime) falls in period ``index``", by the run's named parameters."""
    return f"{column} >= %(start_{int(index)})s AND {column} < %(end_{int(index)})s"


def _count_in_windows(run: "_Run", column: str, alias: str, *, whole: bool = True) -> str:
    """``SUM(…) AS <alias>_<i>``: rows whose ``column`` falls in each period (from 1 if not ``whole``)."""
    periods = run.periods if whole else run.periods[1:]
    return ", ".join(f"SUM(CASE WHEN {_in_window(column, i)} THEN 1 ELSE 0 END) AS {alias}_{i}" for i in periods)


def _in_period(index: int, column: str = "phase_no") -> str:
    """SQL for "this row's visit falls in period ``index``" (0: the whole campaign)."""
    return f"{column} IS NOT NULL" if index == 0 else f"{column} = {int(index)}"


# --- one run -----------------------------------------------------------------------------------


@dataclass
class _Run:
    """What a computation needs: the campaign, its periods, the day, and the schools in scope
    (None: all). ``params`` are the named parameters every statement may use."""

    campaign: Campaign
    windows: list[Window]
    now: datetime.datetime
    school_ids: list[int] | None
    today: datetime.date = field(init=False)
    params: dict = field(init=False)
    care: bool = True  # compute the care-log compliance (the history backfill does not need it)

    def __post_init__(self) -> None:
        self.today = timezone.localdate(self.now)
        year_start, year_end = school_year_window(self.campaign, self.today)
        whole = self.windows[0]
        self.params = {
            "campaign": self.campaign.pk,
            "now": _dt(self.now),
            "today": connection.ops.adapt_datefield_value(self.today),
            "year_start": _dt(year_start),
            "year_end": _dt(year_end),
            "current_year": getattr(SchoolYear.current(self.today), "pk", None),
        }
        for w in self.windows:
            self.params[f"start_{w.index}"] = _dt(w.start_at)
            self.params[f"end_{w.index}"] = _dt(w.end_at)
        self.params["span_start"] = min(self.params["start_0"], self.params["year_start"])
        self.params["span_end"] = max(self.params["end_0"], self.params["year_end"])
        assert whole.index == 0  # noqa: S101

    @property
    def periods(self) -> range:
        return range(len(self.windows))

    def each(self, template: str, sep: str = ", ") -> str:
        """``template`` once per period, ``{i}`` its index and ``{in_period}`` its condition."""
        return sep.join(template.format(i=i, in_period=_in_period(i)) for i in self.periods)

    def pick(self, column: str, alias: str) -> str:
        """The per-period column ``<alias>.<column>_<i>`` of the row's period ``p.idx``, or 0."""
        cases = " ".join(f"WHEN {i} THEN {alias}.{column}_{i}" for i in self.periods)
        return f"COALESCE(CASE p.idx {cases} END, 0)"

    def schools_filter(self, column: str) -> str:
        """``AND column IN (<the scope's schools>)``, empty for a run over every school."""
        if self.school_ids is None:
            return ""
        return f" AND {column} IN ({', '.join(str(int(pk)) for pk in self.school_ids)})"

    def execute(self, sql: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, self.params)
            return cursor.rowcount


# --- the working set ---------------------------------------------------------------------------


def _working_set_build(run: _Run) -> None:
    """The temporary tables every figure set reads, built once per run on the run's connection."""
    _working_set_drop()
    if _postgresql():  # aggregates of many columns: keep them in memory (reset by _working_set_drop)
        run.execute(f"SET work_mem = '{WORK_MEM}'")
        # No JIT: the run's statements are short, and on tables not yet analysed their estimates
        # are large enough to trigger it; compiling cost 1.3 s of the county's stw_student alone.
        run.execute("SET jit = off")
    run.execute("CREATE TEMP TABLE stw_period (idx integer PRIMARY KEY, code varchar(20), revisit integer)")
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO stw_period (idx, code, revisit) VALUES (%s, %s, %s)",
            [(w.index, w.code, int(w.revisit)) for w in run.windows],
        )
    phase_no = (
        "CASE "
        + " ".join(f"WHEN {_in_window('v.visited_at', w.index)} THEN {w.index}" for w in run.windows[1:])
        + f" WHEN {_in_window('v.visited_at', 0)} THEN 0 END"
    )
    # Submitted visits of the campaign and of the school year (the 2-in-home rule), without their
    # text: read through the partial covering index on (visited_at) of submitted visits.
    columns = f"""
        v.id AS visit_id, v.school_id AS school_id, v.lead_teacher_id AS lead_id,
        CASE WHEN v.method = {_lit(Method.IN_HOME)} THEN 1 ELSE 0 END AS in_home,
        {phase_no} AS phase_no,
        CASE WHEN v.visited_at >= %(year_start)s AND v.visited_at < %(year_end)s THEN 1 ELSE 0 END AS in_year"""
    wanted = (
        f"v.status = {_lit(Visit.Status.SUBMITTED)} AND v.visited_at >= %(span_start)s AND v.visited_at < %(span_end)s"
    )
    if run.school_ids is None:
        source = f"SELECT {columns} FROM visits_visit v WHERE {wanted}"
    else:
        # A refresh: the schools' own visits and those their staff led or went on, each arm read
        # by index (one OR over the three would read every visit of the county).
        staff = f"SELECT u.id FROM schools_user u WHERE 1 = 1{run.schools_filter('u.school_id')}"
        source = " UNION ".join(
            [
                f"SELECT {columns} FROM visits_visit v WHERE {wanted}{run.schools_filter('v.school_id')}",
                f"SELECT {columns} FROM visits_visit v WHERE {wanted} AND v.lead_teacher_id IN ({staff})",
                f"SELECT {columns} FROM visits_visit_companions vc JOIN visits_visit v ON v.id = vc.visit_id"
                f" WHERE {wanted} AND vc.user_id IN ({staff})",
            ]
        )
    run.execute(f"CREATE TEMP TABLE stw_visit AS {source}")
    _work_analyze(run, "stw_visit")  # a refresh's few hundred visits then read the join by index
    # Each visit's active students, in the class and school they are on the roster of today.
    run.execute(f"""
        CREATE TEMP TABLE stw_seen AS
        SELECT w.visit_id, w.phase_no, w.in_home, w.in_year,
               s.id AS student_id, s.school_id AS school_id, s.school_class_id AS class_id
        FROM stw_visit w
        JOIN visits_visit_students vs ON vs.visit_id = w.visit_id
        JOIN students_student s ON s.id = vs.student_id
        WHERE s.status = {_lit(Student.Status.ACTIVE)}
    """)
    # The people of each campaign visit: its lead teacher and its companions. Computed once.
    run.execute("""
        CREATE TEMP TABLE stw_people AS
        SELECT w.visit_id, w.lead_id AS user_id, w.phase_no, w.in_home, 1 AS is_lead
        FROM stw_visit w WHERE w.phase_no IS NOT NULL
        UNION ALL
        SELECT w.visit_id, vc.user_id, w.phase_no, w.in_home, 0 AS is_lead
        FROM stw_visit w JOIN visits_visit_companions vc ON vc.visit_id = w.visit_id
        WHERE w.phase_no IS NOT NULL
    """)
    _work_analyze(run, "stw_seen", "stw_people")  # their join below is planned on real sizes
    # Who reached whom: per (member of staff, student) of the campaign's visits, seen per period.
    # The class participation and the teacher figures both read it (the one join of people and
    # students of a run).
    run.execute(f"""
        CREATE TEMP TABLE stw_reach AS
        SELECT pe.user_id, se.student_id, se.class_id,
               {run.each("MAX(CASE WHEN pe.{in_period} THEN 1 ELSE 0 END) AS seen_{i}")}
        FROM stw_people pe JOIN stw_seen se ON se.visit_id = pe.visit_id
        GROUP BY pe.user_id, se.student_id, se.class_id
    """)
    # A class's staff: its head teacher and its assigned teachers, active staff accounts only.
    run.execute(f"""
        CREATE TEMP TABLE stw_class_staff AS
        SELECT DISTINCT cs.class_id, cs.user_id
        FROM (
            SELECT c.id AS class_id, c.head_teacher_id AS user_id FROM schools_schoolclass c
            WHERE c.head_teacher_id IS NOT NULL{run.schools_filter("c.school_id")}
            UNION ALL
            SELECT ta.school_class_id AS class_id, ta.teacher_id AS user_id
            FROM schools_teachingassignment ta JOIN schools_schoolclass c ON c.id = ta.school_class_id
            WHERE 1 = 1{run.schools_filter("c.school_id")}
        ) cs
        JOIN schools_user u ON u.id = cs.user_id
        WHERE u.is_active = {_true()} AND u.role IN {_lits(SCHOOL_ROLES)}
    """)
    # One row per active student: categories in force today, and whether seen in each period.
    categories = ", ".join(
        f"MAX(CASE WHEN sc.category = {_lit(code)} THEN 1 ELSE 0 END) AS c{j}" for j, code in enumerate(CATEGORIES)
    )

    def any_of(codes) -> str:
        return (
            "CASE WHEN "
            + " + ".join(f"COALESCE(c.c{CATEGORIES.index(code)}, 0)" for code in codes)
            + " > 0 THEN 1 ELSE 0 END"
        )

    category_scope = ""
    if run.school_ids is not None:  # a refresh reads its schools' students' categories only
        category_scope = (
            " AND sc.student_id IN (SELECT cs.id FROM students_student cs"
            f" WHERE 1 = 1{run.schools_filter('cs.school_id')})"
        )
    run.execute(f"""
        CREATE TEMP TABLE stw_student AS
        SELECT s.id AS student_id, s.school_id, s.school_class_id AS class_id,
               {", ".join(f"COALESCE(c.c{j}, 0) AS c{j}" for j in range(len(CATEGORIES)))},
               {any_of(FOCUS_CATEGORIES)} AS focus,
               {any_of(SPECIAL_CATEGORIES)} AS special,
               {any_of(CARE)} AS care,
               {any_of(REVISIT_CATEGORIES)} AS revisit_required,
               CASE WHEN COALESCE(seen.in_home_year, 0) >= {IN_HOME_VISITS_REQUIRED} THEN 1 ELSE 0 END AS meets_rule,
               CASE WHEN EXISTS (
                   SELECT 1 FROM ledgers_supportplan sp
                   WHERE sp.student_id = s.id AND sp.school_year_id = %(current_year)s
               ) THEN 1 ELSE 0 END AS has_plan,
               {run.each("COALESCE(seen.seen_{i}, 0) AS seen_{i}")}
        FROM students_student s
        LEFT JOIN (
            SELECT student_id, {run.each("MAX(CASE WHEN {in_period} THEN 1 ELSE 0 END) AS seen_{i}")},
                   SUM(in_home * in_year) AS in_home_year
            FROM stw_seen GROUP BY student_id
        ) seen ON seen.student_id = s.id
        LEFT JOIN (
            SELECT sc.student_id, {categories}
            FROM students_studentcategory sc
            WHERE sc.start <= %(today)s AND (sc."end" IS NULL OR sc."end" >= %(today)s){category_scope}
            GROUP BY sc.student_id
        ) c ON c.student_id = s.id
        WHERE s.status = {_lit(Student.Status.ACTIVE)}{run.schools_filter("s.school_id")}
    """)
    _care_build(run)
    _work_analyze(run, *(table for table in WORK_TABLES if table not in EARLY_ANALYZED))


def _work_analyze(run: _Run, *tables: str) -> None:
    """ANALYZE temporary tables (never analysed by autovacuum) on PostgreSQL. A small sample
    (3,000 rows, not 30,000) gives the planner row counts and distinct values enough for these
    joins at a tenth of the cost (0.6 s of the county's run at the default)."""
    if not _postgresql():
        return
    run.execute(f"SET default_statistics_target = {WORK_STATISTICS_TARGET}")
    for table in tables:
        run.execute(f"ANALYZE {table}")
    run.execute("RESET default_statistics_target")


def _care_build(run: _Run) -> None:
    """``stw_care``: care-log compliance (DESIGN §7) per school and per class and period, by the
    care log's own rule (``ledgers.care.care_compliance_by_periods``: five queries for all the
    run's schools and periods). The whole campaign counts from each school's first term day of the year to
    yesterday; a phase from its first day to the day before the earlier of the day after its end
    and today (a phase not begun yet has nothing due)."""
    from ledgers.care import care_compliance_by_periods  # noqa: PLC0415 - care imports the models this module does

    run.execute(
        "CREATE TEMP TABLE stw_care (level varchar(10), unit_id integer, idx integer, "
        + ", ".join(f"{name} integer" for name in CARE_FIGURES)
        + ")"
    )
    if not run.care:
        return
    school_ids = run.school_ids if run.school_ids is not None else list(School.objects.values_list("pk", flat=True))
    periods = {}
    for w in run.windows:
        if w.index == 0:
            periods[w.index] = (None, run.today)
        else:
            start, until = w.first, min(w.last + datetime.timedelta(days=1), run.today)
            if start < until:
                periods[w.index] = (start, until)
    rows = []
    for index, (by_school, by_class) in care_compliance_by_periods(school_ids, periods).items():
        for level, units in ((Level.SCHOOL, by_school), (Level.CLASS, by_class)):
            rows.extend(
                (str(level), pk, index, c.asks_due, c.asks_done, c.meetings_due, c.meetings_done)
                for pk, c in units.items()
                if c.asks_due or c.meetings_due
            )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CARE_ROWS_A_STATEMENT):  # multi-row inserts: few round trips
            chunk = rows[start : start + CARE_ROWS_A_STATEMENT]
            values = ", ".join([f"({', '.join(['%s'] * 7)})"] * len(chunk))
            cursor.execute(
                f"INSERT INTO stw_care (level, unit_id, idx, {', '.join(CARE_FIGURES)}) VALUES {values}",
                [value for row in chunk for value in row],
            )


def _working_set_drop() -> None:
    with connection.cursor() as cursor:
        for table in WORK_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        if _postgresql():
            cursor.execute("RESET work_mem")
            cursor.execute("RESET jit")


# --- the figure sets ---------------------------------------------------------------------------

UNIT_COLUMNS = (
    "campaign_id",
    "period",
    "level",
    "unit_id",
    "name",
    "zone_id",
    "school_id",
    "sort_key",
    *FIGURES,
    "categories",
    "computed_at",
)
UNIT_KEY = ("campaign_id", "period", "level", "unit_id")


def _students_aggregate(run: _Run, group: str) -> str:
    """Per ``group`` (``school_id`` or ``class_id``) of ``stw_student``: students, categories,
    and, per period, those seen, of them the revisit round's and the focus students, and each
    category's."""
    return f"""
        SELECT {group}, COUNT(*) AS students_total, SUM(focus) AS focus, SUM(special) AS special,
               SUM(care) AS care, SUM(revisit_required) AS revisit_required,
               SUM(special * meets_rule) AS meeting_rule, SUM(special * has_plan) AS with_plan,
               {", ".join(f"SUM(c{j}) AS c{j}" for j in range(len(CATEGORIES)))},
               {run.each("SUM(seen_{i}) AS seen_{i}")},
               {run.each("SUM(revisit_required * seen_{i}) AS revisit_seen_{i}")},
               {run.each("SUM(focus * seen_{i}) AS focus_seen_{i}")},
               {", ".join(run.each(f"SUM(c{j} * seen_{{i}}) AS cv{j}_{{i}}") for j in range(len(CATEGORIES)))}
        FROM stw_student WHERE {group} IS NOT NULL GROUP BY {group}
    """


def _student_columns(run: _Run) -> str:
    """The student figures of a unit row, from the aggregate ``st`` and the period ``p``."""
    categories = _json_pairs(
        [(code, f"COALESCE(st.c{j}, 0)", run.pick(f"cv{j}", "st")) for j, code in enumerate(CATEGORIES)]
    )
    return f"""
        CASE WHEN p.revisit = 1 THEN COALESCE(st.revisit_required, 0) ELSE COALESCE(st.students_total, 0) END
            AS students_required,
        CASE WHEN p.revisit = 1 THEN {run.pick("revisit_seen", "st")} ELSE {run.pick("seen", "st")} END
            AS students_visited,
        COALESCE(st.students_total, 0) AS students_total,
        COALESCE(st.focus, 0) AS focus_students,
        {run.pick("focus_seen", "st")} AS focus_visited,
        COALESCE(st.special, 0) AS special_students,
        COALESCE(st.meeting_rule, 0) AS special_meeting_rule,
        COALESCE(st.care, 0) AS care_students,
        COALESCE(st.with_plan, 0) AS special_with_plan,
        {categories} AS categories
    """


def _class_rows(run: _Run) -> None:
    """Class rows: the students of the class; its staff (head teacher and assigned teachers) and
    those of them who took part in a visit to one of its students; the visits to its students.
    Classes of the current school year, and any other that still has active students."""
    grade_label = "CASE c.grade " + " ".join(f"WHEN {int(g)} THEN '{label}'" for g, label in Grade.choices) + " END"
    sort_key = _pad("c.grade + 10", 2) + " || " + _pad("c.number", 3)
    select = f"""
        WITH st AS ({_students_aggregate(run, "class_id")}),
        took AS (
            SELECT class_id, user_id, {run.each("MAX(seen_{i}) AS took_{i}")}
            FROM stw_reach WHERE class_id IS NOT NULL
            GROUP BY class_id, user_id
        ),
        staff AS (
            SELECT cs.class_id, COUNT(*) AS staff_total, {run.each("SUM(COALESCE(took.took_{i}, 0)) AS took_{i}")}
            FROM stw_class_staff cs
            LEFT JOIN took ON took.class_id = cs.class_id AND took.user_id = cs.user_id
            GROUP BY cs.class_id
        ),
        class_visits AS (  -- a visit of two students of one class (siblings) counts once in it
            SELECT DISTINCT class_id, visit_id, phase_no, in_home
            FROM stw_seen WHERE class_id IS NOT NULL AND phase_no IS NOT NULL
        ),
        visits AS (
            SELECT class_id, {run.each("SUM(CASE WHEN {in_period} THEN 1 ELSE 0 END) AS visits_{i}")},
                   {run.each("SUM(CASE WHEN {in_period} THEN in_home ELSE 0 END) AS in_home_{i}")}
            FROM class_visits GROUP BY class_id
        )
        SELECT %(campaign)s, p.code, {_lit(Level.CLASS)}, c.id,
               {grade_label} || '（' || c.number || '）班', sc.zone_id, c.school_id, {sort_key},
               COALESCE(staff.staff_total, 0) AS staff_total,
               {run.pick("took", "staff")} AS teachers_participating,
               {_student_columns(run)},
               {run.pick("visits", "visits")} AS visits,
               {run.pick("in_home", "visits")} AS in_home_visits,
               0, 0,
               {_care_columns()},
               %(now)s
        FROM schools_schoolclass c
        JOIN schools_school sc ON sc.id = c.school_id
        LEFT JOIN st ON st.class_id = c.id
        LEFT JOIN staff ON staff.class_id = c.id
        LEFT JOIN visits ON visits.class_id = c.id
        CROSS JOIN stw_period p
        LEFT JOIN stw_care cu ON cu.level = {_lit(Level.CLASS)} AND cu.unit_id = c.id AND cu.idx = p.idx
        WHERE (st.class_id IS NOT NULL OR c.school_year_id = %(current_year)s){run.schools_filter("c.school_id")}
        ORDER BY c.id, p.idx
    """
    columns = list(UNIT_COLUMNS)
    # The three school-only indicators are 0 in a class row: keep the select list in column order.
    order = [*columns[:8], "staff_total", "teachers_participating", "students_required", "students_visited",
             "students_total", "focus_students", "focus_visited", "special_students", "special_meeting_rule",
             "care_students", "special_with_plan", "categories", "visits", "in_home_visits", "open_feedback",
             "overdue_safety_reports", *CARE_FIGURES, "computed_at"]  # fmt: skip
    run.execute(_upsert("ledgers_unitstatistics", _fix_order(order), UNIT_KEY, select))
    # Classes that are gone (dissolved, or last year's and emptied) lose their rows.
    run.execute(f"""
        DELETE FROM ledgers_unitstatistics
        WHERE campaign_id = %(campaign)s AND level = {_lit(Level.CLASS)}{run.schools_filter("school_id")}
          AND unit_id NOT IN (
              SELECT c.id FROM schools_schoolclass c
              WHERE (c.school_year_id = %(current_year)s OR c.id IN (SELECT class_id FROM stw_student))
              {run.schools_filter("c.school_id")})
    """)


def _care_columns() -> str:
    """The care-log compliance of a unit row from ``stw_care cu`` (joined on the row's period)."""
    return ", ".join(f"COALESCE(cu.{name}, 0) AS {name}" for name in CARE_FIGURES)


def _fix_order(order: list[str]) -> list[str]:
    """The insert's column list in the order its select produces them (checked against the model)."""
    assert sorted(order) == sorted(UNIT_COLUMNS), set(order) ^ set(UNIT_COLUMNS)  # noqa: S101
    return order


def _school_rows(run: _Run) -> None:
    """School rows: its students; its staff and those of them who took part in any submitted visit
    (lead or companion, filed by any school); the visits it filed; the feedback ledger's items of
    those visits still open (待处理, 处理中, 上报教育局); its safety reports that went overdue, by the
    period of their start; its care-log compliance (``stw_care``)."""
    select = f"""
        WITH st AS ({_students_aggregate(run, "school_id")}),
        took AS (
            SELECT user_id, {run.each("MAX(CASE WHEN {in_period} THEN 1 ELSE 0 END) AS took_{i}")}
            FROM stw_people GROUP BY user_id
        ),
        staff AS (
            SELECT u.school_id, COUNT(*) AS staff_total, {run.each("SUM(COALESCE(took.took_{i}, 0)) AS took_{i}")}
            FROM schools_user u LEFT JOIN took ON took.user_id = u.id
            WHERE u.is_active = {_true()} AND u.role IN {_lits(SCHOOL_ROLES)}
              AND u.school_id IS NOT NULL{run.schools_filter("u.school_id")}
            GROUP BY u.school_id
        ),
        visits AS (
            SELECT school_id, {run.each("SUM(CASE WHEN {in_period} THEN 1 ELSE 0 END) AS visits_{i}")},
                   {run.each("SUM(CASE WHEN {in_period} THEN in_home ELSE 0 END) AS in_home_{i}")}
            FROM stw_visit WHERE phase_no IS NOT NULL GROUP BY school_id
        ),
        feedback AS (  -- the feedback ledger's open items (visits.feedback), by their visit's period
            SELECT sg.school_id, {run.each("SUM(CASE WHEN w.{in_period} THEN 1 ELSE 0 END) AS open_{i}")}
            FROM stw_visit w JOIN visits_suggestion sg ON sg.visit_id = w.visit_id
            WHERE sg.status IN {_lits(OPEN_FEEDBACK_STATUSES)} AND sg.visit_submitted = {_true()}
              AND sg.school_id IS NOT NULL AND w.phase_no IS NOT NULL
            GROUP BY sg.school_id
        ),
        overdue AS (
            SELECT r.school_id,
                   {_count_in_windows(run, "r.planned_start", "overdue")}
            FROM visits_safetyreport r
            WHERE r.overdue_notified_at IS NOT NULL{run.schools_filter("r.school_id")}
            GROUP BY r.school_id
        )
        SELECT %(campaign)s, p.code, {_lit(Level.SCHOOL)}, sc.id, sc.name, sc.zone_id, sc.id, sc.code,
               COALESCE(staff.staff_total, 0) AS staff_total,
               {run.pick("took", "staff")} AS teachers_participating,
               {_student_columns(run)},
               {run.pick("visits", "visits")} AS visits,
               {run.pick("in_home", "visits")} AS in_home_visits,
               {run.pick("open", "feedback")} AS open_feedback,
               {run.pick("overdue", "overdue")} AS overdue_safety_reports,
               {_care_columns()},
               %(now)s
        FROM schools_school sc
        LEFT JOIN st ON st.school_id = sc.id
        LEFT JOIN staff ON staff.school_id = sc.id
        LEFT JOIN visits ON visits.school_id = sc.id
        LEFT JOIN feedback ON feedback.school_id = sc.id
        LEFT JOIN overdue ON overdue.school_id = sc.id
        CROSS JOIN stw_period p
        LEFT JOIN stw_care cu ON cu.level = {_lit(Level.SCHOOL)} AND cu.unit_id = sc.id AND cu.idx = p.idx
        WHERE 1 = 1{run.schools_filter("sc.id")}
        ORDER BY sc.id, p.idx
    """
    order = [*UNIT_COLUMNS[:8], "staff_total", "teachers_participating", "students_required", "students_visited",
             "students_total", "focus_students", "focus_visited", "special_students", "special_meeting_rule",
             "care_students", "special_with_plan", "categories", "visits", "in_home_visits", "open_feedback",
             "overdue_safety_reports", *CARE_FIGURES, "computed_at"]  # fmt: skip
    run.execute(_upsert("ledgers_unitstatistics", _fix_order(order), UNIT_KEY, select))
    # When each school's figures were last computed, changed or not: one narrow row a school.
    run.execute(f"""
        INSERT INTO ledgers_schoolstatisticscheck (campaign_id, school_id, computed_at)
        SELECT %(campaign)s, sc.id, %(now)s FROM schools_school sc WHERE 1 = 1{run.schools_filter("sc.id")}
        ON CONFLICT (campaign_id, school_id) DO UPDATE SET computed_at = excluded.computed_at
    """)


def _teacher_rows(run: _Run) -> None:
    """Teacher rows (the teacher assessment), per member of staff and period: the active students
    of the classes the teacher heads or teaches; of them those with a submitted visit in the
    period the teacher led or joined; the visits led or joined, in-home among them; the records led,
    submitted and in draft (every draft for the whole campaign, else drafts dated in the phase)."""
    true = _true()
    select = f"""
        WITH own AS (  -- (class, teacher) pairs are distinct and a student has one class
            SELECT cs.user_id, s.student_id FROM stw_class_staff cs
            JOIN stw_student s ON s.class_id = cs.class_id
        ),
        students AS (
            SELECT own.user_id, COUNT(*) AS assigned, {run.each("SUM(COALESCE(seen.seen_{i}, 0)) AS seen_{i}")}
            FROM own LEFT JOIN stw_reach seen ON seen.user_id = own.user_id AND seen.student_id = own.student_id
            GROUP BY own.user_id
        ),
        visits AS (
            SELECT user_id, {run.each("SUM(CASE WHEN {in_period} THEN 1 ELSE 0 END) AS visits_{i}")},
                   {run.each("SUM(CASE WHEN {in_period} THEN in_home ELSE 0 END) AS in_home_{i}")},
                   {run.each("SUM(CASE WHEN {in_period} THEN is_lead ELSE 0 END) AS complete_{i}")}
            FROM stw_people GROUP BY user_id
        ),
        drafts AS (
            SELECT v.lead_teacher_id AS user_id, COUNT(*) AS draft_0,
                   {_count_in_windows(run, "v.visited_at", "draft", whole=False)}
            FROM visits_visit v WHERE v.status = {_lit(Visit.Status.DRAFT)}
            GROUP BY v.lead_teacher_id
        )
        SELECT %(campaign)s, p.code, u.id, u.school_id,
               COALESCE(students.assigned, 0), {run.pick("seen", "students")},
               {run.pick("visits", "visits")}, {run.pick("in_home", "visits")},
               {run.pick("complete", "visits")}, {run.pick("draft", "drafts")},
               %(now)s
        FROM schools_user u
        LEFT JOIN students ON students.user_id = u.id
        LEFT JOIN visits ON visits.user_id = u.id
        LEFT JOIN drafts ON drafts.user_id = u.id
        CROSS JOIN stw_period p
        WHERE u.is_active = {true} AND u.role IN {_lits(SCHOOL_ROLES)} AND u.school_id IS NOT NULL
              {run.schools_filter("u.school_id")}
        ORDER BY u.id, p.idx
    """
    columns = ("campaign_id", "period", "teacher_id", "school_id", *TEACHER_FIGURES, "computed_at")
    run.execute(_upsert("ledgers_teacherstatistics", columns, ("campaign_id", "period", "teacher_id"), select))
    # Staff who left the school (moved, disabled) lose the rows they had there.
    run.execute(f"""
        DELETE FROM ledgers_teacherstatistics
        WHERE campaign_id = %(campaign)s{run.schools_filter("school_id")}
          AND teacher_id NOT IN (
              SELECT u.id FROM schools_user u
              WHERE u.is_active = {true} AND u.role IN {_lits(SCHOOL_ROLES)}{run.schools_filter("u.school_id")})
    """)


def _zone_and_county_rows(run: _Run) -> None:
    """Zone rows (the scope's zones, or all) and the county row: sums of their school rows."""
    sums = ", ".join(f"COALESCE(SUM(s.{name}), 0)" for name in FIGURES)
    categories = _json_pairs(
        [
            (code, f"COALESCE(SUM({_json_int('s.categories', code, 0)}), 0)",
             f"COALESCE(SUM({_json_int('s.categories', code, 1)}), 0)")
            for code in CATEGORIES
        ]
    )  # fmt: skip
    zones = ""
    if run.school_ids is not None:
        zones = f" AND z.id IN (SELECT zone_id FROM schools_school sc WHERE 1 = 1{run.schools_filter('sc.id')})"
    school_rows = (
        f"ledgers_unitstatistics s ON s.campaign_id = %(campaign)s AND s.level = {_lit(Level.SCHOOL)}"
        " AND s.period = p.code"
    )
    zone_select = f"""
        SELECT %(campaign)s, p.code, {_lit(Level.ZONE)}, z.id, z.name, z.id, NULL, z.code,
               {sums}, {categories}, %(now)s
        FROM schools_zone z CROSS JOIN stw_period p
        LEFT JOIN {school_rows} AND s.zone_id = z.id
        WHERE 1 = 1{zones}
        GROUP BY z.id, z.name, z.code, p.code
        ORDER BY z.id, p.code
    """
    county_select = f"""
        SELECT %(campaign)s, p.code, {_lit(Level.COUNTY)}, 0, '全县', NULL, NULL, '',
               {sums}, {categories}, %(now)s
        FROM stw_period p LEFT JOIN {school_rows}
        WHERE 1 = 1
        GROUP BY p.code
        ORDER BY p.code
    """
    for select in (zone_select, county_select):
        run.execute(_upsert("ledgers_unitstatistics", UNIT_COLUMNS, UNIT_KEY, select))


def _history_rows(run: _Run) -> None:
    """Today's row in the trend (whole campaign) of each school, zone and the county in scope."""
    scope = ""
    if run.school_ids is not None:
        in_scope = "schools_school sc WHERE 1 = 1" + run.schools_filter("sc.id")
        scope = (
            f" AND ((level = {_lit(Level.SCHOOL)} AND unit_id IN (SELECT sc.id FROM {in_scope}))"
            f" OR (level = {_lit(Level.ZONE)} AND unit_id IN (SELECT sc.zone_id FROM {in_scope}))"
            f" OR level = {_lit(Level.COUNTY)})"
        )
    select = f"""
        SELECT campaign_id, level, unit_id, %(today)s, staff_total, teachers_participating,
               students_required, students_visited
        FROM ledgers_unitstatistics
        WHERE campaign_id = %(campaign)s AND period = {_lit(WHOLE_CAMPAIGN)}
          AND level IN {_lits([Level.SCHOOL, Level.ZONE, Level.COUNTY])}{scope}
    """
    columns = ("campaign_id", "level", "unit_id", "day", *DAY_FIGURES)
    run.execute(_upsert("ledgers_unitstatisticsday", columns, ("campaign_id", "level", "unit_id", "day"), select))


DAY_FIGURES = ("staff_total", "teachers_participating", "students_required", "students_visited")


# The columns the pages and the engine filter and join on: their statistics are what a plan needs.
# (Every figure column too would triple the cost, 0.9 s of the county's run, for plans that sort
# the ranking's 50 rows the same way whatever the statistics say.)
ANALYZED_COLUMNS = {
    "ledgers_unitstatistics": ("campaign_id", "period", "level", "unit_id", "zone_id", "school_id", "computed_at"),
    "ledgers_teacherstatistics": ("campaign_id", "period", "teacher_id", "school_id", "computed_at"),
    "ledgers_unitstatisticsday": ("campaign_id", "level", "unit_id", "day"),
}


def _analyze(run: _Run) -> None:
    """Fresh planner statistics for the tables just written (autovacuum may be off)."""
    if _postgresql() and run.school_ids is None:
        for table, columns in ANALYZED_COLUMNS.items():
            run.execute(f"ANALYZE {table} ({', '.join(columns)})")


# The figure sets in the order a run writes them; a full run records each as a step done.
FIGURE_SETS: tuple[Callable[[_Run], None], ...] = (
    _class_rows,
    _school_rows,
    _teacher_rows,
    _zone_and_county_rows,
    _history_rows,
    _analyze,
)


# --- entry points ----------------------------------------------------------------------------


def _run_for(campaign: Campaign, school_ids: Iterable[int] | None, now: datetime.datetime) -> _Run | None:
    windows = campaign_windows(campaign)
    if not windows:
        return None
    ids = None if school_ids is None else sorted({int(pk) for pk in school_ids})
    return _Run(campaign=campaign, windows=windows, now=now, school_ids=ids)


def statistics_compute(
    *, campaign: Campaign, school_ids: Iterable[int] | None = None, now: datetime.datetime | None = None
) -> None:
    """Compute the rows of ``school_ids`` (every school when None) and roll up their zones and the
    county, in one transaction. Idempotent: the same data gives the same rows however often it
    runs; a row whose figures did not change is not rewritten."""
    run = _run_for(campaign, school_ids, now or timezone.now())
    if run is None or run.school_ids == []:
        return
    with transaction.atomic():
        _working_set_build(run)
        try:
            for figure_set in FIGURE_SETS:
                if figure_set is not _analyze:
                    figure_set(run)
        finally:
            _working_set_drop()
    if run.school_ids is None:
        _analyze(run)


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
            SchoolStatisticsCheck.objects.filter(school_id__in=list(marks), computed_at__gt=fresh_enough).values_list(
                "school_id", flat=True
            )
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


def statistics_recompute_all(*, on_step: Callable[[StatisticsRun], None] | None = None) -> StatisticsRun | None:
    """The nightly full recompute: every figure set over every school, a step at a time.

    One unfinished run per campaign exists at a time (a partial unique constraint). Its claim dies
    with its holder: on PostgreSQL a session advisory lock held on the run's own connection (the
    server releases it when the process dies, however it dies); on SQLite a heartbeat lease of
    ``STATISTICS_RUN_LEASE``. A second run started meanwhile leaves at once; a run whose holder
    died is resumed by the next one at the first step not done (each step's rows and the progress
    are written in one transaction). ``on_step(run)`` is called after each step (tests use it).
    Returns the finished run, or None when there is no campaign or another run holds the claim."""
    now = timezone.now()
    campaign = Campaign.current(timezone.localdate(now))
    if campaign is None:
        return None
    run = _run_claim(campaign, now)
    if run is None:
        return None
    finished = False
    try:
        work = _run_for(campaign, None, timezone.now())
        if work is not None:
            _working_set_build(work)
            for index, figure_set in enumerate(FIGURE_SETS):
                if index < run.steps_done:
                    continue
                with transaction.atomic():
                    figure_set(work)
                    run.steps_done = index + 1
                    run.heartbeat_at = timezone.now()
                    if figure_set is _school_rows:
                        run.schools_done = School.objects.count()
                    run.save(update_fields=["steps_done", "heartbeat_at", "schools_done"])
                if on_step is not None:
                    on_step(run)
            _working_set_drop()
        with transaction.atomic():
            run.finished_at = timezone.now()
            run.save(update_fields=["finished_at"])
            # Every school was computed after the run started: requests made before then are answered.
            School.objects.filter(statistics_stale_since__lte=run.started_at).update(statistics_stale_since=None)
        finished = True
    finally:
        with contextlib.suppress(DatabaseError):  # a lost connection took both with it
            _working_set_drop()
            _claim_release(campaign, None if finished else run)
    return run


def _lock_key(campaign: Campaign) -> int:
    return 0x57A7_0000 + int(campaign.pk)


def _run_claim(campaign: Campaign, now: datetime.datetime) -> StatisticsRun | None:
    """The campaign's unfinished run (resumed) or a new one, or None when a live run holds it."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_lock_key(campaign)])
            if not cursor.fetchone()[0]:
                return None
        run = StatisticsRun.objects.filter(campaign=campaign, finished_at__isnull=True).first()
        if run is not None:  # its holder died (we hold the lock): take it over where it stopped
            run.heartbeat_at = now
            run.save(update_fields=["heartbeat_at"])
            return run
    else:
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
        _claim_release(campaign, None)
        return None  # another worker created the run a moment ago


def _claim_release(campaign: Campaign, unfinished: StatisticsRun | None) -> None:
    """Give the claim up. A run that stopped on an error is left for the next run to resume at
    once (on SQLite its lease is ended; on PostgreSQL the lock is released)."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(campaign)])
    elif unfinished is not None:
        StatisticsRun.objects.filter(pk=unfinished.pk, heartbeat_at=unfinished.heartbeat_at).update(
            heartbeat_at=unfinished.started_at - settings.STATISTICS_RUN_LEASE
        )


def statistics_history_backfill(*, campaign: Campaign, days: Iterable[datetime.date]) -> int:
    """Daily history rows (schools, zones, county; the whole campaign) for past ``days``, counting
    the visits made before each day ended and the categories in force on it. For a deployment in
    mid-campaign, and for the demo's trend. The roster is today's: past rosters are not kept.
    Computed by the same figure sets into a scratch copy of the rows, then kept as the day's rows.
    Returns the number of rows written."""
    written = 0
    windows = campaign_windows(campaign)
    if not windows:
        return 0
    for day in days:
        # The whole campaign as it stood at the end of ``day``: visits after it are not yet made.
        cut = Window(index=0, code=WHOLE_CAMPAIGN, phase=None, first=windows[0].first, last=day)
        if day < windows[0].first:
            continue
        now = start_of(day + datetime.timedelta(days=1)) - datetime.timedelta(seconds=1)
        run = _Run(campaign=campaign, windows=[cut], now=now, school_ids=None, care=False)
        run.params["end_0"] = min(run.params["end_0"], _dt(windows[0].end_at))
        run.params["year_end"] = min(run.params["year_end"], run.params["end_0"])
        run.params["span_end"] = run.params["end_0"]
        with transaction.atomic():
            sid = transaction.savepoint()
            _working_set_build(run)
            run.execute("UPDATE stw_period SET code = 'backfill'")
            _school_rows(run)
            _zone_and_county_rows(run)
            rows = _backfill_rows(run, day)
            _working_set_drop()
            transaction.savepoint_rollback(sid)
            UnitStatisticsDay.objects.bulk_create(
                rows,
                batch_size=2000,
                update_conflicts=True,
                unique_fields=["campaign", "level", "unit_id", "day"],
                update_fields=list(DAY_FIGURES),
            )
        written += len(rows)
    return written


def _backfill_rows(run: _Run, day: datetime.date) -> list[UnitStatisticsDay]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT level, unit_id, {", ".join(DAY_FIGURES)} FROM ledgers_unitstatistics
            WHERE campaign_id = %(campaign)s AND period = 'backfill'
              AND level IN {_lits([Level.SCHOOL, Level.ZONE, Level.COUNTY])}""",
            run.params,
        )
        names = [c[0] for c in cursor.description]
        return [
            UnitStatisticsDay(campaign_id=run.campaign.pk, day=day, **dict(zip(names, row, strict=True)))
            for row in cursor.fetchall()
        ]
