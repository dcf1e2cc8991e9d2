"""The statistics dashboards (DESIGN §7) and the teacher assessment (年度考核、师德考核).

Every page reads only the stored aggregates (``UnitStatistics``, ``UnitStatisticsDay``,
``TeacherStatistics``) that ``ledgers.statistics`` computed: a fixed number of queries whatever the
number of schools, and never the visit table. A unit's row is looked up within the user's scope;
when there is none, the organisation object decides between "not computed yet" and 404 (with the
DENIED audit row of ``schools.scoping``), so that no one learns what lies outside their scope.
"""

import datetime
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.core.cache.utils import make_template_fragment_key
from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from ledgers.exports import teacher_assessment_export
from ledgers.models import WHOLE_CAMPAIGN, Level, TeacherStatistics, UnitStatistics, UnitStatisticsDay, rate
from ledgers.selectors import (
    Period,
    campaign_periods,
    expected_coverage,
    progress_period,
    statistics_campaign,
    teacher_rows,
    trend,
    unit_rows,
)
from schools.models import (
    BUREAU_ROLES,
    AuditEvent,
    Campaign,
    CampaignTarget,
    InspectorAssignment,
    Role,
    School,
    SchoolClass,
    Zone,
)
from schools.privacy import SMALL_COUNT, small_count, works_with_students
from schools.scoping import deny, get_object_for_user, require_roles
from schools.services import audit_event_record
from schools.targets import SOURCES, Target
from students.models import FOCUS_CATEGORIES, SENSITIVE_CATEGORIES, Category

DASHBOARD_ROLES = (Role.SCHOOL_ADMIN, Role.ZONE_ADMIN, Role.INSPECTOR, Role.BUREAU_ADMIN)
NO_VALUE = "—"
# Rows of a ranking per page: a city's 1,500 schools are 30 pages, each the size of a county's.
RANKING_PAGE_SIZE = 50
# How long a page's rendered figures stay cached (Django's cache, per process by default); the key
# holds the figures' computed time, so a refresh makes a new key at once and this only bounds the
# memory kept for keys no longer asked for.
RANKING_CACHE_SECONDS = 600


# --- the request's campaign and period ----------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The campaign the dashboards show, its periods, the one chosen with ``?period=``, and today."""

    campaign: Campaign | None
    periods: list[Period]
    period: Period | None
    today: datetime.date

    @property
    def query(self) -> str:
        """The query string that keeps the chosen period on links to other statistics pages."""
        if self.period is None or self.period.code == WHOLE_CAMPAIGN:
            return ""
        return f"?period={self.period.code}"


def _scope(request: HttpRequest) -> Scope:
    today = timezone.localdate()
    campaign = statistics_campaign(today)
    if campaign is None:
        return Scope(campaign=None, periods=[], period=None, today=today)
    periods = campaign_periods(campaign)
    code = request.GET.get("period")
    period = next((p for p in periods if p.code == code), periods[0])
    return Scope(campaign=campaign, periods=periods, period=period, today=today)


# --- tables: columns, server-side sorting, cells --------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a table: ``value`` gives the sortable value of an item (None sorts last and
    shows 「—」 for a rate); ``kind`` is "text", "count" or "rate"."""

    key: str
    label: str
    value: Callable[[Any], Any]
    kind: str = "count"
    hint: str = ""

    def text(self, item: Any) -> str:
        value = self.value(item)
        if value is None:
            return NO_VALUE if self.kind == "rate" else ""
        return f"{value}%" if self.kind == "rate" else str(value)


@dataclass(frozen=True)
class Header:
    column: Column
    sort: str  # the ?sort= value its link sets
    state: str  # "ascending", "descending" or "" (for aria-sort)


@dataclass
class Line:
    """A table row: the unit or teacher named (and linked), the other cells, and its flags."""

    name: str
    url: str | None
    cells: list[tuple[str, bool]]  # (text, numeric)
    assigned: bool = False
    behind: bool = False


@dataclass
class Table:
    headers: list[Header]
    lines: list[Line]
    sortable: bool
    items: list = field(default_factory=list)  # what the lines show, in their order (for charts)


def sort_items(items: Iterable[Any], columns: list[Column], sort: str) -> tuple[list[Any], str, bool]:
    """Sort by the column ``sort`` names (a leading ``-`` for descending); items without a value
    go last either way. Returns the items, the active column key ("" if none) and the direction."""
    items = list(items)
    key, descending = sort.removeprefix("-"), sort.startswith("-")
    column = next((c for c in columns if c.key == key), None)
    if column is None:
        return items, "", False
    present = [item for item in items if column.value(item) is not None]
    missing = [item for item in items if column.value(item) is None]
    present.sort(key=column.value, reverse=descending)
    return present + missing, key, descending


def _headers(columns: list[Column], active: str, descending: bool) -> list[Header]:
    headers = []
    for column in columns:
        if column.key == active:
            next_descending = not descending
            state = "descending" if descending else "ascending"
        else:
            # Figures rank best first; names read A to Z.
            next_descending, state = column.kind != "text", ""
        headers.append(Header(column=column, sort=f"-{column.key}" if next_descending else column.key, state=state))
    return headers


# --- unit tables ------------------------------------------------------------------------------


@dataclass
class UnitItem:
    """A unit's row with what the page adds: its link, its coverage in the progress phase, whether
    it is behind the expected line, and whether it is one of the inspector's schools."""

    row: UnitStatistics
    url: str | None
    phase_coverage: Decimal | None = None
    behind: bool = False
    assigned: bool = False


NAME_LABELS = {Level.ZONE: "片区", Level.SCHOOL: "学校", Level.CLASS: "班级"}


def unit_columns(level: str, *, with_zone: bool = False, phase_label: str = "") -> list[Column]:
    """The columns of a ranking of units: the sheet's seven columns first, then the indicators."""
    columns = [Column("name", NAME_LABELS.get(level, "单位"), lambda i: i.row.name, "text")]
    if with_zone:
        columns.append(Column("zone", "片区", lambda i: i.row.zone.name if i.row.zone else "", "text"))
    columns += [
        Column("staff_total", "教职工", lambda i: i.row.staff_total),
        Column("teachers_participating", "参与家访教师", lambda i: i.row.teachers_participating),
        Column("participation_rate", "走访率", lambda i: i.row.participation_rate, "rate", "参与家访教师 ÷ 教职工"),
        Column("students_required", "家访学生", lambda i: i.row.students_required),
        Column("students_visited", "已走访", lambda i: i.row.students_visited),
        Column("students_total", "学生总数", lambda i: i.row.students_total),
        Column("coverage_rate", "家访率", lambda i: i.row.coverage_rate, "rate", "已走访 ÷ 家访学生"),
    ]
    if phase_label:
        columns.append(Column("phase_coverage", f"{phase_label}家访率", lambda i: i.phase_coverage, "rate"))
    columns += [
        Column("visits", "家访人次", lambda i: i.row.visits),
        Column("in_home_visits", "入户人次", lambda i: i.row.in_home_visits),
        Column("focus_coverage_rate", "重点关注家访率", lambda i: i.row.focus_coverage_rate, "rate"),
        Column("special_rule_rate", "特殊学生入户满2次", lambda i: i.row.special_rule_rate, "rate"),
        Column("open_feedback", "待处理意见", lambda i: i.row.open_feedback),
        Column("overdue_safety_reports", "超时未报平安", lambda i: i.row.overdue_safety_reports),
    ]
    return columns


def unit_table(items: list[UnitItem], columns: list[Column], *, sort: str | None) -> Table:
    """A table of units, sorted by ``sort`` when it is given (None: not sortable, as listed);
    the inspector's assigned schools stay first whatever the order."""
    active, descending = "", False
    if sort is not None:
        items, active, descending = sort_items(items, columns, sort)
    items = sorted(items, key=lambda item: not item.assigned)  # stable: keeps the column order
    lines = [
        Line(
            name=item.row.name,
            url=item.url,
            cells=[(column.text(item), column.kind != "text") for column in columns[1:]],
            assigned=item.assigned,
            behind=item.behind,
        )
        for item in items
    ]
    return Table(headers=_headers(columns, active, descending), lines=lines, sortable=sort is not None, items=items)


# --- rankings sorted and paginated in the database ---------------------------------------------------

# The rate columns as (numerator, denominator) of the row's fields; ``phase_coverage`` reads the
# progress phase's row of the same unit (annotated by ``_ranking_rows``).
RATE_FIELDS = {
    "participation_rate": ("teachers_participating", "staff_total"),
    "coverage_rate": ("students_visited", "students_required"),
    "focus_coverage_rate": ("focus_visited", "focus_students"),
    "special_rule_rate": ("special_meeting_rule", "special_students"),
    "phase_coverage": ("phase_visited", "phase_required"),
}
TEXT_FIELDS = {"name": "name", "zone": "zone__name"}
RANKING_DEFAULT_SORT = "-coverage_rate"


class Percent(Func):
    """``ledgers.models.rate`` in SQL: numerator × 100 ÷ denominator rounded to one decimal, NULL
    when the denominator is 0, so that a ranking sorted in the database orders (and ties) exactly
    as the rates it shows. PostgreSQL computes it in exact ``numeric``; SQLite in floating point."""

    arity = 2
    output_field = FloatField()

    def as_sql(self, compiler, connection, **extra_context):
        (numerator, numerator_params), (denominator, denominator_params) = (
            compiler.compile(expression) for expression in self.get_source_expressions()
        )
        scaled = f"CAST({numerator} AS NUMERIC) * 100" if connection.vendor == "postgresql" else f"{numerator} * 100.0"
        sql = f"CASE WHEN {denominator} > 0 THEN ROUND({scaled} / {denominator}, 1) END"
        return sql, (*denominator_params, *numerator_params, *denominator_params)


def _ranking_order(columns: list[Column], sort: str) -> tuple[list, str, bool]:
    """The ORDER BY of a ranking sorted by ``sort`` (a column key, ``-`` first for descending):
    values missing (「—」) last either way, ties in the organisation's order, as ``sort_items`` does.
    Returns the ordering, the active column key ("" if none) and the direction."""
    key, descending = sort.removeprefix("-"), sort.startswith("-")
    tail = ["sort_key", "name", "pk"]
    if not any(column.key == key for column in columns):
        return tail, "", False
    if key in RATE_FIELDS:
        expression = Percent(*(F(name) for name in RATE_FIELDS[key]))
    else:
        expression = F(TEXT_FIELDS.get(key, key))
    if key == "zone":  # a row without a zone shows "", which sorts first
        ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_first=True)
    else:
        ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return [ordered, *tail], key, descending


def _ranking_rows(rows: QuerySet, *, user, progress: "Period | None", period: "Period", level: str) -> QuerySet:
    """``rows`` with what a ranking needs besides the row: ``phase_required`` and ``phase_visited``
    of the unit in the progress phase (the row's own figures when that is the chosen period), and
    ``assigned`` (an inspector's 包联 school)."""
    if progress is not None and progress.code != period.code:
        phase = UnitStatistics.objects.filter(
            campaign_id=OuterRef("campaign_id"),
            period=progress.code,
            level=OuterRef("level"),
            unit_id=OuterRef("unit_id"),
        )
        rows = rows.annotate(
            phase_required=Subquery(phase.values("students_required")[:1]),
            phase_visited=Subquery(phase.values("students_visited")[:1]),
        )
    else:
        rows = rows.annotate(phase_required=F("students_required"), phase_visited=F("students_visited"))
    if level == Level.SCHOOL and user.role == Role.INSPECTOR:
        mine = InspectorAssignment.objects.filter(inspector=user, school_id=OuterRef("unit_id"))
        rows = rows.annotate(assigned=Exists(mine))
    else:
        rows = rows.annotate(assigned=Value(False))
    return rows


class UnitTargets:
    """The coverage targets of a campaign's units (issue 12), read once (one query): ``of`` gives a
    unit's ``Target`` by the precedence of ``schools.targets.targets_for`` (a school's or class's
    school, else its zone, else the county, else the campaign), ``case`` the same as a SQL
    ``CASE`` over a ``UnitStatistics`` queryset, so that a ranking counts the units behind their own
    line in the database. ``version`` changes whenever a target does (the figures' cache key)."""

    def __init__(self, campaign: Campaign) -> None:
        rows = list(CampaignTarget.objects.filter(campaign=campaign).order_by("pk"))
        county = next((t for t in rows if t.zone_id is None and t.school_id is None), None)
        self.default = Target(campaign.coverage_target, 100, 100, 100, "campaign")
        if county is not None:
            self.default = _campaign_target(county, "county")
        self.zones = {t.zone_id: _campaign_target(t, "zone") for t in rows if t.zone_id is not None}
        self.schools = {t.school_id: _campaign_target(t, "school") for t in rows if t.school_id is not None}
        self.version = repr([self.default, sorted(self.zones.items()), sorted(self.schools.items())])

    def of(self, unit: UnitStatistics) -> Target:
        if unit.level in (Level.SCHOOL, Level.CLASS) and unit.school_id in self.schools:
            return self.schools[unit.school_id]
        if unit.level != Level.COUNTY and unit.zone_id in self.zones:
            return self.zones[unit.zone_id]
        return self.default

    def case(self, value: Callable[[Target], Any], output_field) -> Case | None:
        """``value(target)`` of each row's target as SQL (None when the default's value is None)."""
        default = value(self.default)
        if default is None:
            return None
        whens = []
        for field_name, levels, by_id in (
            ("school_id", [Level.SCHOOL, Level.CLASS], self.schools),
            ("zone_id", [Level.ZONE, Level.SCHOOL, Level.CLASS], self.zones),
        ):
            grouped: dict[Any, list[int]] = {}
            for unit_id, target in by_id.items():
                grouped.setdefault(value(target), []).append(unit_id)
            whens += [
                When(Q(level__in=levels, **{f"{field_name}__in": ids}), then=Value(result, output_field=output_field))
                for result, ids in grouped.items()
            ]
        return Case(*whens, default=Value(default, output_field=output_field), output_field=output_field)


def _campaign_target(row: CampaignTarget, source: str) -> Target:
    return Target(row.coverage, row.participation, row.focus_coverage, row.special_in_home, source)


@dataclass
class Ranking:
    """One page of a ranking: the table of its rows, the page (``Page``), and how many units of the
    whole ranking are behind today's expected line."""

    table: Table
    page: Page
    behind_count: int


def unit_ranking(
    rows: QuerySet,
    columns: list[Column],
    *,
    sort: str,
    page_number: str | None,
    progress_shown: bool,
    targets: "UnitTargets",
    expected_of: Callable[[Target], Decimal | None],
    url: Callable[[UnitStatistics], str | None],
) -> Ranking:
    """A ranking of units sorted and paginated in the database (``RANKING_PAGE_SIZE`` rows a page):
    an inspector's 包联 schools first whatever the order, then ``sort``'s order. ``rows`` come from
    ``_ranking_rows``. Each unit is behind when its progress-phase coverage is under the expected
    line of its own target (``targets``; ``expected_of`` turns a target into today's line, None
    outside a phase): in SQL for the count, in Python for the page's rows, with the same values.
    Two queries: the counts (units, and those behind the line) and the page."""
    ordering, active, descending = _ranking_order(columns, sort)
    # One query counts the units and those behind the line; the paginator takes the count from it.
    behind = Q(pk__in=[])
    if progress_shown:
        expected_line = targets.case(expected_of, FloatField())
        if expected_line is not None:
            behind = Q(phase_rate__lt=expected_line)
    counts = rows.alias(phase_rate=Percent(F("phase_visited"), F("phase_required"))).aggregate(
        total=Count("pk"), behind=Count("pk", filter=behind)
    )
    paginator = Paginator(rows.order_by(F("assigned").desc(), *ordering), RANKING_PAGE_SIZE)
    paginator.count = counts["total"]  # a cached_property: set, it spares the paginator's own COUNT
    page = paginator.get_page(page_number)
    items = []
    for unit_row in page.object_list:
        coverage = rate(unit_row.phase_visited or 0, unit_row.phase_required or 0) if progress_shown else None
        expected = expected_of(targets.of(unit_row))
        items.append(
            UnitItem(
                row=unit_row,
                url=url(unit_row),
                phase_coverage=coverage,
                behind=expected is not None and coverage is not None and coverage < expected,
                assigned=bool(unit_row.assigned),
            )
        )
    behind_count = counts["behind"] or 0
    table = Table(
        headers=_headers(columns, active, descending),
        lines=[
            Line(
                name=item.row.name,
                url=item.url,
                cells=[(column.text(item), column.kind != "text") for column in columns[1:]],
                assigned=item.assigned,
                behind=item.behind,
            )
            for item in items
        ],
        sortable=True,
        items=items,
    )
    return Ranking(table=table, page=page, behind_count=behind_count)


TEACHER_COLUMNS = [
    Column("name", "教师", lambda r: r.teacher.display_name, "text"),
    Column("students_assigned", "任教学生数", lambda r: r.students_assigned),
    Column("students_visited", "已走访学生数", lambda r: r.students_visited),
    Column("coverage_rate", "覆盖率", lambda r: r.coverage_rate, "rate", "已走访学生数 ÷ 任教学生数"),
    Column("visits", "家访人次", lambda r: r.visits),
    Column("in_home_visits", "入户家访人次", lambda r: r.in_home_visits),
    Column("records_complete", "已提交记录", lambda r: r.records_complete),
    Column("records_draft", "草稿", lambda r: r.records_draft),
]


def teacher_table(rows: list[TeacherStatistics], *, sort: str | None) -> Table:
    """The teacher assessment table, sorted by ``sort`` when given (None: by name, not sortable)."""
    active, descending = "", False
    if sort is not None:
        rows, active, descending = sort_items(rows, TEACHER_COLUMNS, sort)
    lines = [
        Line(
            name=row.teacher.display_name,
            url=None,
            cells=[(column.text(row), True) for column in TEACHER_COLUMNS[1:]],
        )
        for row in rows
    ]
    return Table(headers=_headers(TEACHER_COLUMNS, active, descending), lines=lines, sortable=sort is not None)


# --- the page of one unit ---------------------------------------------------------------------


@dataclass
class Unit:
    """The unit a page is about: its level and id, its name, its row (None before it was computed),
    the breadcrumbs above it, and the rows of the level below it."""

    level: str
    unit_id: int
    name: str
    row: UnitStatistics | None
    crumbs: list[tuple[str, str | None]] = field(default_factory=list)
    child_level: str | None = None
    child_filter: dict = field(default_factory=dict)
    school_id: int | None = None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _crumbs(request: HttpRequest, scope: Scope, *, zone=None, school=None) -> list[tuple[str, str | None]]:
    """全县 › 片区 › 学校, each linked when the user may open that page."""
    role = request.user.role
    crumbs: list[tuple[str, str | None]] = [("全县", reverse("statistics_county") + scope.query)]
    if role not in BUREAU_ROLES:
        crumbs = []
    if zone is not None:
        may_open = role in BUREAU_ROLES or role == Role.ZONE_ADMIN
        crumbs.append((zone.name, reverse("statistics_zone", args=[zone.pk]) + scope.query if may_open else None))
    if school is not None:
        crumbs.append((school.name, reverse("statistics_school", args=[school.pk]) + scope.query))
    return crumbs


def _unit_row(request: HttpRequest, scope: Scope, *, level: str, unit_id: int, **lookup) -> UnitStatistics | None:
    """The unit's row of the chosen period among the rows the user may see, or None."""
    if scope.campaign is None:
        return None
    rows = UnitStatistics.objects.visible_to(request.user).filter(
        campaign=scope.campaign, period=scope.period.code, level=level, unit_id=unit_id, **lookup
    )
    return rows.select_related("zone", "school").first()


def _headline(row: UnitStatistics, *, exact: bool = True) -> list[dict]:
    """The headline figures of a unit, as cards; not ``exact``: 1 or 2 care students show 「<3」."""
    return [
        {
            "label": "走访率（教师参与）",
            "value": _rate_text(row.participation_rate),
            "detail": f"参与家访教师 {row.teachers_participating} / 教职工 {row.staff_total}",
        },
        {
            "label": "家访率（学生覆盖）",
            "value": _rate_text(row.coverage_rate),
            "detail": (
                f"已走访 {row.students_visited} / 家访学生 {row.students_required}（学生总数 {row.students_total}）"
            ),
        },
        {
            "label": "重点关注学生家访率",
            "value": _rate_text(row.focus_coverage_rate),
            "detail": f"已走访 {row.focus_visited} / 重点关注学生 {row.focus_students}",
        },
        {
            "label": "特殊学生入户家访满 2 次",
            "value": _rate_text(row.special_rule_rate),
            "detail": f"{row.special_meeting_rule} / 特殊学生 {row.special_students}",
        },
        {
            "label": "家访人次",
            "value": str(row.visits),
            "detail": f"其中入户 {row.in_home_visits} 人次",
        },
        {
            "label": "关爱台账·每日一问完成率",
            "value": _rate_text(row.care_ask_rate),
            "detail": (
                f"已记 {row.care_asks_done} / 应记 {row.care_asks_due}；每周一见 {_rate_text(row.care_meeting_rate)}"
                f"（{row.care_meetings_done} / {row.care_meetings_due}）；"
                f"关爱对象 {small_count(row.care_students, exact=exact)} 人"
            ),
            "tone": "warning" if row.care_asks_done < row.care_asks_due else "",
        },
        {
            "label": "特殊学生一生一策建档率",
            "value": _rate_text(row.plan_rate),
            "detail": f"已建档 {row.special_with_plan} / 特殊学生 {row.special_students}",
        },
        {
            "label": "待处理家长意见",
            "value": str(row.open_feedback),
            "detail": "提交学校、尚未答复",
            "tone": "warning" if row.open_feedback else "",
        },
        {
            "label": "超时未报平安",
            "value": str(row.overdue_safety_reports),
            "detail": "家访报备超过预计返回时间",
            "tone": "danger" if row.overdue_safety_reports else "",
        },
    ]


def _rate_text(value: Decimal | None) -> str:
    return NO_VALUE if value is None else f"{value}%"


def _categories(row: UnitStatistics, *, exact: bool = True) -> list[dict]:
    """Coverage of each focus family type (重点关注六类家庭) from the row's ``categories``. Not
    ``exact``: a sensitive category's 1 or 2 students show as 「<3」, with no rate (issue 14)."""
    result = []
    for code in FOCUS_CATEGORIES:
        students, visited = (row.categories or {}).get(str(code), [0, 0])
        value = rate(visited, students)
        if code in SENSITIVE_CATEGORIES and small_count(students, exact=exact) == SMALL_COUNT:
            students, visited, value = SMALL_COUNT, small_count(visited, exact=False), None
        result.append(
            {
                "label": str(Category(code).label),
                "students": students,
                "visited": visited,
                "rate": _rate_text(value),
            }
        )
    return result


def _render_unit(request: HttpRequest, scope: Scope, unit: Unit, *, with_zones: bool = False) -> HttpResponse:
    """Render a dashboard: headline figures and progress of ``unit``, the ranking of the units
    below it (sorted and paginated in the database, each unit behind its own target's line
    highlighted), focus categories, and the daily trend. The rendered figures are cached under a
    key of what they depend on (``_figures_cache_key``); a cached page reads no ranking."""
    context: dict[str, Any] = {"scope": scope, "unit": unit, "title": f"{unit.name}统计看板"}
    row = unit.row
    if scope.campaign is None or row is None:
        return render(request, "ledgers/dashboard.html", context)
    user, campaign, period = request.user, scope.campaign, scope.period

    progress = progress_period(scope.periods, period, scope.today)
    # Each unit is measured against its own target (schools.targets: school, zone, county, campaign).
    targets = UnitTargets(campaign)

    def expected_for(target: Target) -> Decimal | None:
        if progress is None:
            return None
        return expected_coverage(target=target.coverage, start=progress.start, end=progress.end, today=scope.today)

    expected = expected_for(targets.of(row))
    # Small numbers of a sensitive category in a class point at a child (issue 14).
    exact = unit.level != Level.CLASS or works_with_students(user)

    # The figures rendered for the same key before: the page around them only, no further query.
    key = _figures_cache_key(
        request, unit, campaign=campaign, periods=[period, progress], targets=targets, expected=expected, exact=exact
    )
    fragments = [make_template_fragment_key(name, [key]) for name in ("dashboard_figures", "dashboard_tables")]
    cached_charts = cache.get(f"{fragments[0]}:charts")
    if cached_charts is not None and all(cache.get(fragment) is not None for fragment in fragments):
        context.update(
            row=row, charts=cached_charts, ranking_cache_seconds=RANKING_CACHE_SECONDS, figures_cache_key=key
        )
        return render(request, "ledgers/dashboard.html", context)

    zones = list(unit_rows(user, campaign=campaign, period=period.code, level=Level.ZONE)) if with_zones else []

    # Coverage in the progress phase of the unit and its zones: the rows already read when that
    # phase is the chosen period, else one query for the same units in that phase. The ranking
    # below reads its own in the database.
    if progress is None:
        phase_rows = {}
    elif progress.code == period.code:
        phase_rows = {(r.level, r.unit_id): r for r in [row, *zones]}
    else:
        wanted = Q(level=unit.level, unit_id=unit.unit_id)
        if with_zones:
            wanted |= Q(level=Level.ZONE)
        phase_rows = {
            (r.level, r.unit_id): r
            for r in UnitStatistics.objects.visible_to(user).filter(wanted, campaign=campaign, period=progress.code)
        }

    def item(unit_row: UnitStatistics, url: str | None) -> UnitItem:
        phase_row = phase_rows.get((unit_row.level, unit_row.unit_id))
        coverage = phase_row.coverage_rate if phase_row is not None else None
        expected = expected_for(targets.of(unit_row))
        return UnitItem(
            row=unit_row,
            url=url,
            phase_coverage=coverage,
            behind=expected is not None and coverage is not None and coverage < expected,
        )

    own = item(row, None)
    phase_label = progress.label if progress is not None and progress.code != period.code else ""
    ranking = None
    if unit.child_level:
        children = _ranking_rows(
            unit_rows(user, campaign=campaign, period=period.code, level=unit.child_level, **unit.child_filter),
            user=user,
            progress=progress,
            period=period,
            level=unit.child_level,
        ).select_related("zone")
        ranking = unit_ranking(
            children,
            unit_columns(unit.child_level, with_zone=with_zones, phase_label=phase_label),
            # Ranked by coverage (家访率), highest first, unless the viewer chose a column.
            sort=request.GET.get("sort", RANKING_DEFAULT_SORT),
            page_number=request.GET.get("page"),
            progress_shown=progress is not None,
            targets=targets,
            expected_of=expected_for,
            url=lambda r: _child_url(r, scope),
        )
    children_table = ranking.table if ranking is not None else None
    zones_table = None
    if with_zones:
        zone_items = [item(r, reverse("statistics_zone", args=[r.unit_id]) + scope.query) for r in zones]
        zones_table = unit_table(zone_items, unit_columns(Level.ZONE, phase_label=phase_label), sort=None)

    days = trend(campaign=campaign, level=unit.level, unit_id=unit.unit_id)
    categories = _categories(row, exact=exact)
    # The chart follows the table's page and order, so that a sorted ranking reads the same in both.
    ranked = children_table.items if children_table is not None else []
    charts = _charts(scope, days=days, ranked=ranked, categories=categories, progress=progress, expected=expected)
    own_target = targets.of(row)
    context.update(
        {
            "row": row,
            "computed_at": row.computed_at,
            "headline": _headline(row, exact=exact),
            "progress": progress,
            "expected": expected,
            "progress_text": _progress_text(own.phase_coverage, expected) if progress is not None else None,
            "own": own,
            "target": own_target.coverage,
            "target_source": own_target.source_label,
            # The targets the units of this page are measured against (more than one: each its own).
            "child_targets": sorted({(SOURCES[t.source], t.coverage) for t in (targets.of(i.row) for i in ranked)}),
            "children_table": children_table,
            "children_page": ranking.page if ranking is not None else None,
            "children_label": NAME_LABELS.get(unit.child_level, ""),
            "zones_table": zones_table,
            "categories": categories,
            "days": list(reversed(days)),
            "charts": charts,
            "behind_count": ranking.behind_count if ranking is not None else 0,
        }
    )
    context["ranking_cache_seconds"] = RANKING_CACHE_SECONDS
    context["figures_cache_key"] = key
    cache.set(f"{fragments[0]}:charts", charts, RANKING_CACHE_SECONDS)
    if unit.level == Level.SCHOOL:
        teachers = list(teacher_rows(user, campaign=campaign, period=period.code, school_id=unit.unit_id))
        context["teachers_table"] = teacher_table(teachers, sort=None)
    return render(request, "ledgers/dashboard.html", context)


def _figures_cache_key(
    request: HttpRequest,
    unit: Unit,
    *,
    campaign: Campaign,
    periods: list[Period | None],
    targets: UnitTargets,
    expected: Decimal | None,
    exact: bool,
) -> str:
    """What the rendered figures of a page depend on: the unit, the query string (period, sort,
    page), when the figures of the campaign's units in the shown and the progress periods last
    changed (``computed_at`` moves only with the figures, so new figures make a new key and nothing
    is ever invalidated; one aggregate query, with the teachers' rows on a school's page), the
    targets (any change to one), today's expected line, whether small counts are shown exactly
    (issue 14), and the viewer's role (an inspector's own 包联 schools lead the ranking). The
    freshness note and the oversight panel are outside the cached fragments."""
    codes = [p.code for p in periods if p is not None]
    # The latest computed time of each period, each read off the end of the index on
    # (campaign, period, computed_at): one query whose cost does not grow with the units.
    latest = {
        f"latest_computed_{index}": Subquery(
            UnitStatistics.objects.filter(campaign=campaign, period=code)
            .order_by("-computed_at")
            .values("computed_at")[:1]
        )
        for index, code in enumerate(codes)
    }
    changed = (
        Campaign.objects.filter(pk=campaign.pk).order_by().annotate(**latest).values_list(*latest).first()
        if latest
        else ()
    )
    parts = [",".join(str(value) for value in changed or ())]
    if unit.level == Level.SCHOOL:
        teachers = TeacherStatistics.objects.filter(campaign=campaign, period__in=codes, school_id=unit.unit_id)
        parts.append(str(teachers.aggregate(last=Max("computed_at"))["last"]))
    viewer = f"{request.user.role}:{request.user.pk if request.user.role == Role.INSPECTOR else ''}"
    return "|".join(
        [
            unit.level,
            str(unit.unit_id),
            request.GET.urlencode(),
            *parts,
            hashlib.sha256(targets.version.encode()).hexdigest()[:16],
            str(expected),
            "exact" if exact else "masked",
            viewer,
        ]
    )


def _charts(
    scope: Scope,
    *,
    days: list[UnitStatisticsDay],
    ranked: list[UnitItem],
    categories: list[dict],
    progress: Period | None,
    expected: Decimal | None,
) -> dict:
    """The figures the charts of ``static/js/dashboard.js`` draw, for ``json_script``; a chart with
    nothing to draw is None (and hidden)."""
    trend_data = None
    if days:
        trend_data = {
            "days": [d.day.isoformat() for d in days],
            "coverage": [_float(d.coverage_rate) for d in days],
            "participation": [_float(d.participation_rate) for d in days],
            "phases": [
                {"label": p.label, "start": p.start.isoformat(), "end": p.end.isoformat()}
                for p in scope.periods
                if p.phase is not None
            ],
        }
    units = None
    if ranked:
        # During a visiting phase the bars are that phase's coverage, against today's expected line.
        values = [i.phase_coverage if progress is not None else i.row.coverage_rate for i in ranked]
        units = {
            "title": f"{progress.label}家访率" if progress is not None else "家访率",
            "names": [i.row.name for i in ranked],
            "values": [_float(v) for v in values],
            "behind": [i.behind for i in ranked],
            "expected": _float(expected),
        }
    return {
        "trend": trend_data,
        "units": units,
        "categories": {
            "labels": [c["label"] for c in categories],
            "students": [c["students"] if c["students"] != SMALL_COUNT else None for c in categories],
            "visited": [c["visited"] if c["visited"] != SMALL_COUNT else None for c in categories],
        },
    }


def _progress_text(actual: Decimal | None, expected: Decimal) -> dict[str, str]:
    """The progress card's figures, and the bar widths as plain numbers for the style attribute."""
    return {
        "actual": _rate_text(actual),
        "expected": f"{expected}%",
        "actual_width": str(min(actual or Decimal(0), Decimal(100))),
        "expected_width": str(min(expected, Decimal(100))),
    }


def _child_url(row: UnitStatistics, scope: Scope) -> str | None:
    if row.level == Level.SCHOOL:
        return reverse("statistics_school", args=[row.unit_id]) + scope.query
    if row.level == Level.CLASS:
        return reverse("statistics_class", args=[row.school_id, row.unit_id]) + scope.query
    return None


def _redirect_to(request: HttpRequest, name: str, *args) -> HttpResponse:
    url = reverse(name, args=args)
    return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


# --- views ------------------------------------------------------------------------------------


@require_roles(*DASHBOARD_ROLES)
def county_dashboard(request: HttpRequest) -> HttpResponse:
    """The county dashboard for the bureau roles; a zone or school admin is sent to their unit."""
    user = request.user
    if user.role == Role.ZONE_ADMIN and user.zone_id:
        return _redirect_to(request, "statistics_zone", user.zone_id)
    if user.role == Role.SCHOOL_ADMIN and user.school_id:
        return _redirect_to(request, "statistics_school", user.school_id)
    if user.role not in BUREAU_ROLES:  # an admin account without its zone or school
        deny(request, object_type="view", object_id="statistics_county")
        raise Http404
    scope = _scope(request)
    unit = Unit(
        level=Level.COUNTY,
        unit_id=0,
        name="全县",
        row=_unit_row(request, scope, level=Level.COUNTY, unit_id=0),
        child_level=Level.SCHOOL,
    )
    return _render_unit(request, scope, unit, with_zones=True)


@require_roles(*DASHBOARD_ROLES)
def zone_dashboard(request: HttpRequest, zone_id: int) -> HttpResponse:
    """A zone's page: its figures and its schools (bureau roles, and the zone's own admin)."""
    scope = _scope(request)
    row = _unit_row(request, scope, level=Level.ZONE, unit_id=zone_id)
    zone = row.zone if row is not None else get_object_for_user(Zone, request, pk=zone_id)
    unit = Unit(
        level=Level.ZONE,
        unit_id=zone_id,
        name=zone.name,
        row=row,
        crumbs=_crumbs(request, scope),
        child_level=Level.SCHOOL,
        child_filter={"zone_id": zone_id},
    )
    return _render_unit(request, scope, unit)


@require_roles(*DASHBOARD_ROLES)
def school_dashboard(request: HttpRequest, school_id: int) -> HttpResponse:
    """A school's page: its figures, its classes and its teachers (the school's admin, the admin
    of its zone, the bureau roles)."""
    scope = _scope(request)
    row = _unit_row(request, scope, level=Level.SCHOOL, unit_id=school_id)
    if row is not None:
        school, zone = row.school, row.zone
    else:
        school = get_object_for_user(School.objects.select_related("zone"), request, pk=school_id)
        zone = school.zone
    unit = Unit(
        level=Level.SCHOOL,
        unit_id=school_id,
        name=school.name,
        row=row,
        crumbs=_crumbs(request, scope, zone=zone),
        child_level=Level.CLASS,
        child_filter={"school_id": school_id},
        school_id=school_id,
    )
    return _render_unit(request, scope, unit)


@require_roles(*DASHBOARD_ROLES)
def class_dashboard(request: HttpRequest, school_id: int, class_id: int) -> HttpResponse:
    """A class's figures, the last step of the drill-down (who may see its school may see it)."""
    scope = _scope(request)
    row = _unit_row(request, scope, level=Level.CLASS, unit_id=class_id, school_id=school_id)
    if row is not None:
        name, school, zone = row.name, row.school, row.zone
    else:
        school_class = get_object_for_user(
            SchoolClass.objects.filter(school_id=school_id).select_related("school__zone"), request, pk=class_id
        )
        name, school, zone = school_class.name, school_class.school, school_class.school.zone
    unit = Unit(
        level=Level.CLASS,
        unit_id=class_id,
        name=name,
        row=row,
        crumbs=_crumbs(request, scope, zone=zone, school=school),
        school_id=school_id,
    )
    return _render_unit(request, scope, unit)


# --- teacher assessment -----------------------------------------------------------------------


def _teacher_rows(request: HttpRequest, school_id: int) -> tuple[School, Scope, list[TeacherStatistics]]:
    school = get_object_for_user(School.objects.select_related("zone"), request, pk=school_id)
    scope = _scope(request)
    rows: list[TeacherStatistics] = []
    if scope.campaign is not None:
        rows = list(teacher_rows(request.user, campaign=scope.campaign, period=scope.period.code, school_id=school.pk))
    return school, scope, rows


@require_roles(*DASHBOARD_ROLES)
def teacher_assessment(request: HttpRequest, school_id: int) -> HttpResponse:
    """Per teacher of the school: students assigned and visited, coverage, visits, in-home visits,
    records submitted and in draft; sortable with ``?sort=``."""
    school, scope, rows = _teacher_rows(request, school_id)
    table = teacher_table(rows, sort=request.GET.get("sort", ""))
    return render(
        request,
        "ledgers/teacher_assessment.html",
        {
            "school": school,
            "scope": scope,
            "table": table,
            "computed_at": max((r.computed_at for r in rows), default=None),
            "crumbs": _crumbs(request, scope, zone=school.zone, school=school),
        },
    )


@require_roles(*DASHBOARD_ROLES)
def teacher_assessment_xlsx(request: HttpRequest, school_id: int) -> HttpResponse:
    """The teacher assessment as XLSX, in the order the page shows; audited."""
    school, scope, rows = _teacher_rows(request, school_id)
    rows, key, descending = sort_items(rows, TEACHER_COLUMNS, request.GET.get("sort", ""))
    export = teacher_assessment_export(
        rows, school=school, period_label=scope.period.label if scope.period else "", today=scope.today
    )
    period = scope.period.code if scope.period else ""
    audit_event_record(
        action=AuditEvent.Action.EXPORT,
        request=request,
        object_type="ledgers.TeacherStatistics",
        object_id=str(school.pk),
        detail={
            "filters": {"school": school.pk, "period": period, "sort": f"-{key}" if key and descending else key},
            "period": period,
            "rows": export.rows,
            "format": "xlsx",
        },
    )
    return export.response()
