"""The bureau's statistics sheet, 「万名教师大家访」活动情况统计表 (DESIGN §7), as XLSX.

One row generator (``statistics_sheet_rows``) yields the header, one row per unit below the
exporting one, then the 合计 row; one writer (``statistics_sheet_write``) lays those rows out on a
printable A4 landscape page under the title and the 报送单位 / 联系人 / 电话 / 年 月 日 line, with the
definitions as a note. The same generator, with other columns, fills the second sheet 「其他指标」.

Every figure comes from stored ``UnitStatistics`` rows: the 合计 row is the exporting unit's own row,
never a sum of the rows above it (and rates are never added up). Nothing here reads the visit table.

Formula neutralisation (``ledgers.xlsx``): a text cell that starts with ``= + - @`` (or a tab or
carriage return) is written as a string cell (never a formula cell) with the *quote prefix* style,
the flag a spreadsheet sets when someone types a leading apostrophe, so that it stays text when the
cell is edited. The text shows unchanged: a phone number “+86 …” or a name
stays readable on paper. Unlike ``schools.exports.neutralise``, no apostrophe is added to the value,
because this sheet is printed and handed on.
"""

import datetime
import math
import tempfile
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from django.db.models import QuerySet
from django.utils import timezone

from ledgers.models import Level, UnitStatistics
from ledgers.selectors import Period
from ledgers.xlsx import CellStyle, Sheet, Workbook
from schools.exports import XLSX_CONTENT_TYPE, ExportFile, display_width
from schools.models import Campaign, User
from students.models import FOCUS_CATEGORIES, Category
from visits.feedback import feedback_by_category_and_status
from visits.models import Suggestion

TITLE = "「万名教师大家访」活动情况统计表"
OTHER_SHEET_TITLE = "其他指标"
MAIN_SHEET_TITLE = "活动情况统计表"
TOTAL_LABEL = "合计"
NO_RATE = "—"  # a rate whose denominator is zero
RATE_FORMAT = "0.0%"
COMPUTED_AT_FORMAT = "%Y-%m-%d %H:%M"

# The levels a sheet can be exported for, and the level of the rows listed below each.
SHEET_LEVELS = (Level.COUNTY, Level.ZONE, Level.SCHOOL)
CHILD_LEVEL = {Level.COUNTY: Level.ZONE, Level.ZONE: Level.SCHOOL, Level.SCHOOL: Level.CLASS}

HEADER_ROW = 4  # title, the 报送单位 line, the period line, then the column header


class _Style:
    """The workbook's cell styles, by their index in ``_STYLES``: a cell names its style by number,
    and the workbook holds each style once however many cells use it."""

    TITLE, LINE, LINE_RIGHT, HEADER, TEXT, NUMBER, RATE = range(7)
    TOTAL_TEXT, TOTAL_NUMBER, TOTAL_RATE, NOTE_TITLE, NOTE = range(7, 12)


_HEADER_FILL, _TOTAL_FILL = "DDEBF7", "F2F2F2"
_STYLES = (
    CellStyle(bold=True, size=16, horizontal="center", vertical="center", wrap=True),  # TITLE
    # Heading lines shrink rather than spill or clip when a name is long.
    CellStyle(horizontal="left", vertical="center", shrink=True),  # LINE
    CellStyle(horizontal="right", vertical="center", shrink=True),  # LINE_RIGHT
    CellStyle(bold=True, fill=_HEADER_FILL, border=True, horizontal="center", vertical="center", wrap=True),
    CellStyle(border=True, horizontal="left", vertical="center", wrap=True),  # TEXT
    CellStyle(border=True, horizontal="center", vertical="center", wrap=True),  # NUMBER
    CellStyle(border=True, horizontal="center", vertical="center", wrap=True, number_format=RATE_FORMAT),
    CellStyle(bold=True, fill=_TOTAL_FILL, border=True, horizontal="left", vertical="center", wrap=True),
    CellStyle(bold=True, fill=_TOTAL_FILL, border=True, horizontal="center", vertical="center", wrap=True),
    CellStyle(
        bold=True,
        fill=_TOTAL_FILL,
        border=True,
        horizontal="center",
        vertical="center",
        wrap=True,
        number_format=RATE_FORMAT,
    ),
    CellStyle(bold=True, horizontal="left", vertical="top", wrap=True),  # NOTE_TITLE
    CellStyle(horizontal="left", vertical="top", wrap=True),  # NOTE
)


@dataclass(frozen=True)
class Column:
    """One column of a sheet: its header, how wide it prints, and its value for a unit's row."""

    label: str
    value: Callable[[UnitStatistics], object]
    width: float
    is_rate: bool = False  # a Decimal percentage (or None, shown 「—」)


def _category_figure(code: str, index: int) -> Callable[[UnitStatistics], int]:
    def value(row: UnitStatistics) -> int:
        figures = row.categories.get(str(code)) or (0, 0)
        return int(figures[index])

    return value


# The seven columns of the attachment, in its order.
MAIN_COLUMNS: tuple[Column, ...] = (
    Column("单位", attrgetter("name"), 28),
    Column("参与家访教师数量", attrgetter("teachers_participating"), 17),
    Column("走访率", attrgetter("participation_rate"), 10, is_rate=True),
    Column("家访学生数量", attrgetter("students_required"), 13),
    Column("已走访人数", attrgetter("students_visited"), 12),
    Column("学生总数", attrgetter("students_total"), 13),
    Column("家访率", attrgetter("coverage_rate"), 14, is_rate=True),
)

# The further indicators. A label "group·column" puts the column under a group heading that spans
# its neighbours of the same group (a two-row header).
OTHER_COLUMNS: tuple[Column, ...] = (
    Column("单位", attrgetter("name"), 24),
    Column("教职工总数", attrgetter("staff_total"), 8),
    Column("家访人次·全部", attrgetter("visits"), 8),
    Column("家访人次·其中入户", attrgetter("in_home_visits"), 8),
    Column("重点关注学生·人数", attrgetter("focus_students"), 8),
    Column("重点关注学生·已走访", attrgetter("focus_visited"), 8),
    Column("重点关注学生·走访率", attrgetter("focus_coverage_rate"), 8, is_rate=True),
    *(
        column
        for code in FOCUS_CATEGORIES
        for column in (
            Column(f"{Category(code).label}·人数", _category_figure(code, 0), 8),
            Column(f"{Category(code).label}·已走访", _category_figure(code, 1), 8),
        )
    ),
    Column("特殊学生·人数", attrgetter("special_students"), 8),
    Column("特殊学生·入户家访满 2 次", attrgetter("special_meeting_rule"), 9),
    Column("特殊学生·达标率", attrgetter("special_rule_rate"), 8, is_rate=True),
    Column("特殊学生·已建一生一策", attrgetter("special_with_plan"), 9),
    Column("特殊学生·建档率", attrgetter("plan_rate"), 8, is_rate=True),
    Column("孤儿和事实无人抚养儿童", attrgetter("care_students"), 10),
    Column("每日一问·应记", attrgetter("care_asks_due"), 8),
    Column("每日一问·已记", attrgetter("care_asks_done"), 8),
    Column("每日一问·完成率", attrgetter("care_ask_rate"), 8, is_rate=True),
    Column("每周一见·应见", attrgetter("care_meetings_due"), 8),
    Column("每周一见·已见", attrgetter("care_meetings_done"), 8),
    Column("每周一见·完成率", attrgetter("care_meeting_rate"), 8, is_rate=True),
    Column("待处理家长意见", attrgetter("open_feedback"), 8),
    Column("超时未报平安", attrgetter("overdue_safety_reports"), 8),
)
GROUP_SEPARATOR = "·"
FEEDBACK_TABLE_TITLE = "问题反馈台账：家长意见按类别和状态（条）"

MAIN_NOTES = (
    "说明：",
    "1. 统计期间：一次家访计入其家访日期所在的阶段（阶段日期调整后按新日期重新计算）；全年指第一个阶段开始日至最后一个"
    "阶段结束日的每一天，含阶段之间的日子（如暑假）。只统计已提交的家访记录。",
    "2. 参与家访教师数量：学校、片区、全县为本单位在册教职工（在职的教师和学校管理员）中，统计期间内作为主访教师或"
    "同行人员参与过至少一次已提交家访的人数（每人只计一次，片区、全县为所属学校之和）；班级为本班班主任和任课教师中，"
    "统计期间内参与过本班学生的已提交家访的人数（只走访了其他班学生的不计入本班）。",
    "3. 走访率 = 参与家访教师数量 ÷ 本单位在册教职工总数（班级为本班班主任和任课教师人数），反映教师全员参与情况。",
    "4. 家访学生数量：统计期间应家访的学生数。第一轮全员家访及全年为全部在籍学生；"
    "第二轮重点回访为重点关注学生和特殊学生（按计算当日有效的类别）。",
    "5. 已走访人数：家访学生数量中，统计期间内至少有一次已提交家访记录的学生人数（每人只计一次）。学生计入其当前所在"
    "学校和班级。",
    "6. 学生总数：在籍学生人数。家访率 = 已走访人数 ÷ 家访学生数量，反映学生覆盖情况。",
    f"7. 比率保留一位小数；分母为 0 时显示「{NO_RATE}」。{TOTAL_LABEL}行是本单位自身的统计数（按人去重），"
    "不是上面各行比率的相加或平均。",
    "8. 数据由系统定时计算，以表头所列计算时间为准；之后提交的家访记录在下次计算后计入。",
)

OTHER_NOTES = (
    "说明：",
    "1. 家访人次、入户家访人次：统计期间内已提交的家访记录次数，其中上门（入户）家访的次数；"
    "一次家访走访多名学生计一次。",
    "2. 重点关注学生：属于经济困难家庭、学习困难、思想和学业上有重大变化、留守儿童（含单亲子女）、"
    "进城务工随迁子女、残疾学生六类之一的在籍学生，一名学生属于多类时在各类中分别计数、在合计中只计一次。",
    "3. 特殊学生须每学年入户家访不少于 2 次；达标率 = 入户家访满 2 次的特殊学生 ÷ 特殊学生。",
    "4. 待处理家长意见：家访中提交学校处理的家长意见条数；超时未报平安：家访报备超过预计返回时间仍未报平安的次数。",
    "5. 一生一策建档率 = 计算当日在册特殊学生中已建本学年帮扶计划（一生一策）的人数 ÷ 特殊学生。",
    "6. 关爱台账：孤儿和事实无人抚养儿童每个上学日应记每日一问、每个有上学日的周应记每周一见，统计至计算日前一天"
    "（全年自本学年第一学期开学日起，阶段自阶段开始日起）；完成率 = 已记 ÷ 应记，请假、未到校并注明的计为已记。",
    f"7. 分母为 0 时比率显示「{NO_RATE}」。{TOTAL_LABEL}行是本单位自身的统计数，不是上面各行相加。",
)


@dataclass(frozen=True)
class SheetHeading:
    """What the sheet says above the table: who reports, for which period, and how fresh it is."""

    unit_name: str
    contact_name: str
    contact_phone: str
    day: datetime.date
    campaign_name: str
    period_label: str
    computed_at: datetime.datetime


@dataclass(frozen=True)
class StatisticsSheet:
    """Everything the writer needs: the heading, the rows below the exporting unit, and its own row."""

    heading: SheetHeading
    units: Sequence["SheetUnit | UnitStatistics"]  # the rows below the exporting unit
    total: UnitStatistics
    # The feedback ledger's items by category and status (header row first), under the further
    # indicators; empty for none (issue 11, ``visits.feedback.feedback_by_category_and_status``).
    feedback: Sequence[Sequence] = ()


# --- reading the rows ------------------------------------------------------------------------


def sheet_child_rows(
    rows: QuerySet[UnitStatistics], unit: UnitStatistics, *, all_schools: bool = False
) -> QuerySet[UnitStatistics]:
    """The rows listed below ``unit``: a school's classes, a zone's schools, the county's zones (or,
    with ``all_schools``, every school of the county). ``rows`` is the caller's scope, e.g.
    ``UnitStatistics.objects.visible_to(user)``; one query, whatever the number of units."""
    level = CHILD_LEVEL[unit.level]
    if unit.level == Level.COUNTY and all_schools:
        level = Level.SCHOOL
    children = rows.filter(campaign_id=unit.campaign_id, period=unit.period, level=level)
    if unit.level == Level.ZONE:
        children = children.filter(zone_id=unit.unit_id)
    elif unit.level == Level.SCHOOL:
        children = children.filter(school_id=unit.unit_id)
    if level == Level.SCHOOL and unit.level == Level.COUNTY:
        # Schools grouped by zone, as the bureau files them.
        return children.order_by("zone__code", "sort_key", "name")
    return children.order_by("sort_key", "name")


# The stored figures the columns of both sheets read (directly or through a rate).
SHEET_FIELDS = (
    "name",
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
    "special_with_plan",
    "care_students",
    "care_asks_due",
    "care_asks_done",
    "care_meetings_due",
    "care_meetings_done",
    "open_feedback",
    "overdue_safety_reports",
    "categories",
)


class SheetUnit(namedtuple("SheetUnitFields", SHEET_FIELDS)):
    """One unit's row below the exporting unit: the stored figures as a tuple, with the model's own
    rate properties (they read only these fields), so that a rate here is the dashboards' rate.
    A model instance per unit cost twice as much to read: 44 against 20 ms of CPU for 1,500
    schools."""

    __slots__ = ()
    participation_rate = UnitStatistics.participation_rate
    coverage_rate = UnitStatistics.coverage_rate
    focus_coverage_rate = UnitStatistics.focus_coverage_rate
    special_rule_rate = UnitStatistics.special_rule_rate
    care_ask_rate = UnitStatistics.care_ask_rate
    care_meeting_rate = UnitStatistics.care_meeting_rate
    plan_rate = UnitStatistics.plan_rate


def sheet_units(children: QuerySet[UnitStatistics]) -> list[SheetUnit]:
    """The rows of ``children`` (e.g. ``sheet_child_rows``) in its order, in one query."""
    return [SheetUnit._make(values) for values in children.values_list(*SHEET_FIELDS)]


def sheet_contact(unit: UnitStatistics, user: User | None = None) -> tuple[str, str]:
    """联系人 and 电话: a school's contact on file; for a zone or the county, the person exporting."""
    if unit.level == Level.SCHOOL and unit.school is not None:
        return unit.school.contact_name, unit.school.contact_phone
    if user is not None:
        return user.display_name, user.phone
    return "", ""


def sheet_feedback_table(user: User, *, unit: UnitStatistics, period: Period) -> list[list]:
    """The unit's feedback items raised in the period by category and status (header first), read
    from the feedback ledger in one query (issue 11)."""
    items = Suggestion.objects.visible_to(user)
    if unit.level == Level.SCHOOL:
        items = items.filter(school_id=unit.unit_id)
    elif unit.level == Level.ZONE:
        items = items.filter(school__zone_id=unit.unit_id)
    if period.start:
        items = items.filter(raised_on__gte=period.start)
    if period.end:
        items = items.filter(raised_on__lte=period.end)
    return feedback_by_category_and_status(items)


def period_label(period: Period) -> str:
    """The period as the sheet names it: 全年, or the phase with its dates."""
    if period.phase is None:
        return "全年"
    if period.start and period.end:
        return f"{period.label}（{period.start:%Y-%m-%d} 至 {period.end:%Y-%m-%d}）"
    return period.label


def sheet_filename(unit: UnitStatistics, period: Period, day: datetime.date) -> str:
    """活动情况统计表_<unit>_<period>_<date>.xlsx, with nothing a file system would refuse."""
    name = "".join("_" if char in '\\/:*?"<>|' else char for char in unit.name)
    label = "全年" if period.phase is None else period.label
    return f"活动情况统计表_{name}_{label}_{day:%Y%m%d}.xlsx"


def statistics_sheet_export(
    *,
    rows: QuerySet[UnitStatistics],
    unit: UnitStatistics,
    campaign: Campaign,
    period: Period,
    all_schools: bool = False,
    contact: tuple[str, str] = ("", ""),
    day: datetime.date | None = None,
    feedback: Sequence[Sequence] = (),
) -> ExportFile:
    """The statistics sheet of ``unit`` (a row the caller fetched through its scope) as an XLSX file;
    ``rows`` scopes the units listed below it. One query reads them, then the writer streams both
    sheets to a temporary file."""
    day = day or timezone.localdate()
    heading = SheetHeading(
        unit_name=unit.name,
        contact_name=contact[0],
        contact_phone=contact[1],
        day=day,
        campaign_name=campaign.name,
        period_label=period_label(period),
        computed_at=unit.computed_at,
    )
    units = sheet_units(sheet_child_rows(rows, unit, all_schools=all_schools))
    sheet = StatisticsSheet(heading=heading, units=units, total=unit, feedback=feedback)
    return statistics_sheet_write(sheet, filename=sheet_filename(unit, period, day))


# --- the row generator -----------------------------------------------------------------------


HEADER, UNIT, TOTAL = "header", "unit", "total"


def statistics_sheet_rows(
    columns: Sequence[Column], units: Sequence[SheetUnit | UnitStatistics], total: UnitStatistics
) -> Iterator[tuple[str, list]]:
    """(kind, values): the header, one row per unit, then 合计 — the exporting unit's own stored
    row, so its rates are its own and not a sum of the rates above."""
    yield HEADER, [column.label for column in columns]
    for unit in units:
        yield UNIT, [column.value(unit) for column in columns]
    yield TOTAL, [TOTAL_LABEL, *(column.value(total) for column in columns[1:])]


# --- the writer ------------------------------------------------------------------------------


def statistics_sheet_write(sheet: StatisticsSheet, *, filename: str) -> ExportFile:
    """Write both sheets to a temporary XLSX file (``ledgers.xlsx``: each row becomes its XML as it
    is added, every cell names one of a dozen shared styles)."""
    workbook = Workbook(_STYLES)
    _write_table(
        workbook.add_sheet(MAIN_SHEET_TITLE),
        title=TITLE,
        heading=sheet.heading,
        columns=MAIN_COLUMNS,
        rows=statistics_sheet_rows(MAIN_COLUMNS, sheet.units, sheet.total),
        notes=MAIN_NOTES,
    )
    _write_table(
        workbook.add_sheet(OTHER_SHEET_TITLE),
        title=f"{TITLE}（{OTHER_SHEET_TITLE}）",
        heading=sheet.heading,
        columns=OTHER_COLUMNS,
        rows=statistics_sheet_rows(OTHER_COLUMNS, sheet.units, sheet.total),
        notes=OTHER_NOTES,
        extra_title=FEEDBACK_TABLE_TITLE if sheet.feedback else "",
        extra_rows=sheet.feedback,
    )
    target = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115 - the response (or the caller) closes it
    try:
        workbook.save(target)
    except BaseException:
        target.close()
        raise
    return ExportFile(file=target, filename=filename, content_type=XLSX_CONTENT_TYPE, rows=len(sheet.units))


def _write_table(
    ws: Sheet,
    *,
    title: str,
    heading: SheetHeading,
    columns: Sequence[Column],
    rows: Iterator[tuple[str, list]],
    notes: Sequence[str],
    extra_title: str = "",
    extra_rows: Sequence[Sequence] = (),
) -> None:
    """Title, heading lines, the table under a header repeated on every printed page, the notes,
    then an optional small table (``extra_rows``, header first) under ``extra_title``."""
    widths = [column.width for column in columns]
    count = len(columns)
    grouped = any(GROUP_SEPARATOR in column.label for column in columns)
    header_rows = 2 if grouped else 1
    first_data_row = HEADER_ROW + header_rows
    ws.widths = widths
    # A4 landscape, one page wide and as many down as the rows need, centred; left and right
    # margins 0.5 in, top and bottom 1 in (room for the page-number footer): ``Sheet``'s defaults.
    ws.footer = "第 &P 页，共 &N 页"
    ws.print_title_rows = (HEADER_ROW, first_data_row - 1)
    ws.freeze = (first_data_row, 2)

    # 1: the title across the table.
    row = ws.append([(title, _Style.TITLE)], height=32)
    ws.merge(row, 1, row, count)
    # 2: 报送单位 over the first column, then 联系人, 电话 and the date over a third of the rest each.
    day = heading.day
    rest = count - 1
    _append_spread(
        ws,
        texts=[
            f"报送单位：{heading.unit_name}",
            f"联系人：{heading.contact_name}",
            f"电话：{heading.contact_phone}",
            f"{day.year} 年 {day.month} 月 {day.day} 日",
        ],
        spans=[1, *(rest // 3 + (1 if index >= 3 - rest % 3 else 0) for index in range(3))],
    )
    # 3: the campaign and period; when the figures were computed, over enough columns on the right.
    computed = timezone.localtime(heading.computed_at).strftime(COMPUTED_AT_FORMAT)
    right = next(n for n in range(1, count + 1) if sum(widths[-n:]) >= 27 or n == count)
    _append_spread(
        ws,
        texts=[f"{heading.campaign_name}　统计期间：{heading.period_label}", f"数据计算于 {computed}"],
        spans=[count - right, right],
    )
    # 4…: the table. A column's style is the same on every unit's row (and on every 合计 row); a
    # rate without a denominator shows 「—」 in the number style.
    rate_columns = [index for index, column in enumerate(columns) if column.is_rate]
    row_styles = {
        kind: [text, *(rate if column.is_rate else number for column in columns[1:])]
        for kind, (text, number, rate) in ((UNIT, _UNIT_STYLES), (TOTAL, _TOTAL_STYLES))
    }
    for kind, values in rows:
        if kind == HEADER:
            _append_header(ws, values, two_rows=grouped)
            continue
        styles = row_styles[kind]
        for index in rate_columns:
            if values[index] is not None:
                values[index] = _fraction(values[index])
                continue
            if styles is row_styles[kind]:
                styles = list(styles)
            values[index] = NO_RATE
            styles[index] = _TOTAL_STYLES[1] if kind == TOTAL else _UNIT_STYLES[1]
        ws.append_values(values, styles)
    # The definitions as a note under the table, one merged line each, tall enough to print whole.
    ws.append([])
    chars_per_line = sum(widths) / 2  # a CJK character is about two width units
    for index, note in enumerate(notes):
        lines = max(1, math.ceil(display_width(note) / 2 / chars_per_line))
        row = ws.append([(note, _Style.NOTE_TITLE if index == 0 else _Style.NOTE)], height=16 * lines + 2)
        ws.merge(row, 1, row, count)
    if extra_rows:
        ws.append([])
        row = ws.append([(extra_title, _Style.NOTE_TITLE)])
        ws.merge(row, 1, row, count)
        for index, values in enumerate(extra_rows):
            if index == 0:
                ws.append([(str(label), _Style.HEADER) for label in values])
                continue
            total = values[0] == TOTAL_LABEL
            text_style = _Style.TOTAL_TEXT if total else _Style.TEXT
            number_style = _Style.TOTAL_NUMBER if total else _Style.NUMBER
            ws.append([(value, text_style if isinstance(value, str) else number_style) for value in values])


def _append_header(ws: Sheet, labels: Sequence[str], *, two_rows: bool) -> None:
    """The column header. With two rows, "group·column" labels put a merged group heading over the
    columns of the group, and a label without a group spans both rows."""
    if not two_rows:
        ws.append([(label, _Style.HEADER) for label in labels], height=36)
        return
    top: list[tuple[str, int]] = []
    bottom: list[tuple[str, int]] = []
    merges: list[tuple[int, int, int, int]] = []
    parts = [label.split(GROUP_SEPARATOR, 1) for label in labels]
    first = ws.row_count + 1
    index = 0
    while index < len(parts):
        group = parts[index][0]
        if len(parts[index]) == 1:
            top.append((group, _Style.HEADER))
            bottom.append(("", _Style.HEADER))
            merges.append((first, index + 1, first + 1, index + 1))
            index += 1
            continue
        end = index
        while end + 1 < len(parts) and len(parts[end + 1]) == 2 and parts[end + 1][0] == group:
            end += 1
        for position in range(index, end + 1):
            top.append((group if position == index else "", _Style.HEADER))
            bottom.append((parts[position][1], _Style.HEADER))
        if end > index:
            merges.append((first, index + 1, first, end + 1))
        index = end + 1
    ws.append(top, height=32)
    ws.append(bottom, height=46)
    for merge in merges:
        ws.merge(*merge)


def _append_spread(ws: Sheet, *, texts: Sequence[str], spans: Sequence[int]) -> None:
    """One row of texts, each merged over its span of columns, the last one aligned right."""
    cells: list[tuple[str, int] | None] = []
    for index, (text, span) in enumerate(zip(texts, spans, strict=True)):
        cells.append((text, _Style.LINE_RIGHT if index == len(texts) - 1 else _Style.LINE))
        cells.extend([None] * (span - 1))
    row = ws.append(cells, height=22)
    column = 1
    for span in spans:
        if span > 1:
            ws.merge(row, column, row, column + span - 1)
        column += span


# (text, number, rate) styles of a unit's row and of the 合计 row.
_UNIT_STYLES = (_Style.TEXT, _Style.NUMBER, _Style.RATE)
_TOTAL_STYLES = (_Style.TOTAL_TEXT, _Style.TOTAL_NUMBER, _Style.TOTAL_RATE)


def _fraction(percentage: Decimal | float) -> float:
    """The stored percentage, already rounded to one decimal, as the fraction a cell formatted
    0.0% shows as 87.5% (a rate is written as a number a spreadsheet can sort; 「—」 when it has
    no denominator)."""
    return float(Decimal(percentage) / 100)
